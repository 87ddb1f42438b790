"""CI providers behind one small Protocol (``base.CiProvider``): CircleCI, GitHub Actions,
GitLab CI and Jenkins. Each module talks to one provider's HTTP API with httpx and maps its
status words to :class:`base.RunState`; nothing here decides whether a canary may go on."""
