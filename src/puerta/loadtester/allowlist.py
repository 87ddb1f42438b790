"""Decide whether a task's shell command may run: every simple command in it must start with an
allow-listed executable.

The command still runs under ``sh -c`` / ``bash -c`` as the flagger-loadtester runs it (Canary
specs use pipes, ``&&`` and quoting), so the check reads the text the way a shell would and errs
on the side of refusing:

* the text is split into simple commands on ``|``, ``||``, ``&&``, ``;``, ``&``, ``(``, ``)``
  and newlines (quoted separators are not separators, as in the shell);
* leading ``NAME=value`` assignments are skipped, unless they change how programs are found or
  loaded (``PATH``, ``LD_PRELOAD``, ``BASH_ENV``, ...), which would make the check meaningless;
* redirections (``>``, ``>>``, ``<``, ``2>&1``) and their targets are skipped;
* the first remaining word is the executable: its basename must be allow-listed, and a path
  (``/usr/bin/curl``) must be the very file that name finds on ``PATH``, so ``/tmp/x/curl``
  does not pass as ``curl``;
* command and process substitution (``$(``, backticks, ``<(``, ``>(``) are refused outright:
  they run commands the split above cannot see. So is arithmetic expansion (``$((``).

Shell keywords (``if``, ``for``, ``{``) and builtins (``cd``, ``export``, ``eval``) are not
executables, so a command using them is refused unless they are allow-listed. Allow-listing a
shell or a program that runs others (``sh``, ``bash``, ``env``, ``xargs``, ``timeout``) allows
everything: the docs say so.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterator, Sequence

_FORBIDDEN = (
    ("$(", "command substitution $(...)"),
    ("`", "command substitution `...`"),
    ("<(", "process substitution <(...)"),
    (">(", "process substitution >(...)"),
)
_SEPARATOR_CHARS = frozenset(";|&()\n")
_FD_DUPLICATION = frozenset({">&", "<&"})
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
#: variables that change which program runs or what it loads: never settable from a command.
_PROTECTED_VARIABLES = frozenset(
    {
        "ENV",
        "IFS",
        "HOME",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "GLOBIGNORE",
        "CURL_HOME",
        "NODE_OPTIONS",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
    }
)
_PROTECTED_PREFIXES = ("LD_", "DYLD_", "BASH", "GCONV", "LOC", "PYTHON", "PERL", "RUBY", "XDG_")


class CommandRefused(Exception):
    """The command may not run; the message says why (it is shown to Flagger)."""


def check_command(command: str, allow: Sequence[str], path: str | None) -> None:
    """Raise :class:`CommandRefused` unless every simple command in ``command`` starts with
    an allow-listed executable. ``path`` is the ``PATH`` the command will run with."""
    if "\x00" in command:
        raise CommandRefused("command contains a NUL byte")
    for text, what in _FORBIDDEN:
        if text in command:
            raise CommandRefused(f"{what} is not allowed in loadtester commands")
    for executable in executables(command):
        _check_executable(executable, allow, path)


def executables(command: str) -> Iterator[str]:
    """The executable word of each simple command in ``command``, in order."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"  # a newline separates commands: it is punctuation here
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' mid-word is not a comment to sh: treat it all as words
    try:
        tokens = list(lexer)
    except ValueError as exc:  # unbalanced quotes
        raise CommandRefused(f"cannot read the command: {exc}") from exc
    expect_command = True
    skip_target = False
    for token in tokens:
        if _is_operator(token):
            if _SEPARATOR_CHARS.intersection(token) and token not in _FD_DUPLICATION:
                expect_command = True
            skip_target = "<" in token or ">" in token
            continue
        if skip_target:  # the file (or descriptor) of a redirection
            skip_target = False
            continue
        if not expect_command:
            continue  # an argument
        assignment = _ASSIGNMENT.match(token)
        if assignment is not None:
            _check_assignment(assignment.group(1))
            continue
        expect_command = False
        yield token


def _is_operator(token: str) -> bool:
    return bool(token) and all(c in "();<>|&\n" for c in token)


def _check_assignment(name: str) -> None:
    upper = name.upper()
    if (
        upper in _PROTECTED_VARIABLES
        or upper.endswith("PATH")
        or upper.startswith(_PROTECTED_PREFIXES)
    ):
        raise CommandRefused(
            f"setting {name} is not allowed in loadtester commands (it changes which "
            "programs run or what they load)"
        )


def _check_executable(word: str, allow: Sequence[str], path: str | None) -> None:
    name = word.rsplit("/", 1)[-1]
    if name not in allow:
        allowed = ", ".join(allow) or "nothing"
        raise CommandRefused(
            f"executable {word!r} is not allowed (loadtester.commands.allow: {allowed})"
        )
    if "/" not in word:
        return
    found = shutil.which(name, path=path)
    if found is None or os.path.realpath(word) != os.path.realpath(found):
        raise CommandRefused(
            f"executable {word!r} is not the allowed {name!r} found on PATH ({found or 'none'})"
        )
