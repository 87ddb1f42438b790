"""The Jinja2 environment: autoescaping on, undefined names are errors, and the few filters the
templates need to show times (machine-readable UTC for the browser's script, readable UTC text
for everyone else), durations and URL segments."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from puerta import __version__
from puerta.dashboard import viewmodels
from puerta.domain.durations import format_duration

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/ui/static"


def iso_utc(moment: datetime) -> str:
    """``2026-11-26T10:00:00Z``: what ``<time datetime>`` and the local-time script read."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(moment: datetime) -> str:
    """``Thu 2026-11-26 10:00 UTC``: the text shown until (or without) the script."""
    return moment.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def ago(moment: datetime, now: datetime) -> str:
    """``12m ago`` (``just now`` under a second; ``in 5m`` for a future instant)."""
    delta = now - moment
    if abs(delta.total_seconds()) < 1:
        return "just now"
    if delta.total_seconds() < 0:
        return f"in {format_duration(-delta)}"
    return f"{format_duration(delta)} ago"


def url_segment(value: str) -> str:
    return quote(value, safe="")


def _static_urls() -> dict[str, str]:
    """Each static file's URL with a content hash, so browsers never run a stale script."""
    urls = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            urls[path.name] = f"{STATIC_PREFIX}/{path.name}?v={digest}"
    return urls


def make_templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    urls = _static_urls()

    def static(name: str) -> str:
        return urls[name]

    env.filters.update(iso=iso_utc, utc=utc_text, seg=url_segment)
    env.globals.update(
        static=static,
        ago=ago,
        version=__version__,
        unknown_weight=viewmodels.UNKNOWN_WEIGHT,
        unknown_commit=viewmodels.UNKNOWN_COMMIT,
        unknown_revision=viewmodels.UNKNOWN_REVISION,
    )
    return env
