"""flagger-loadtester compatibility: its endpoints and answers, on Puerta's state.

A Canary that uses flagger-loadtester for manual gating (``/gate/*``, ``/rollback/*``) and for
load tests or acceptance tests (``POST /`` with ``type: cmd`` / ``type: bash``) switches to
Puerta by changing only the webhook URLs' host (docs/migrating-from-flagger-loadtester.md).

* ``routes.py``: the gate endpoints; ``gates.py``: the gates as Puerta manual actions;
* ``tasks.py``: the task endpoint; ``allowlist.py``: which commands may run; ``runner.py``:
  running them; ``config.py``: the policy's ``loadtester`` section.

``install.py``: ``install`` adds the routes when the app is built; ``start`` creates this
replica's command runner in the app's lifespan, whose ``stop`` kills the commands still running
at shutdown.

This module imports nothing: the policy schema imports ``config.py`` from this package, and
the rest of the package imports the policy schema.
"""
