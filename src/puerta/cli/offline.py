"""Run a throw-away, in-process Puerta for commands that work without a server
(``explain --policy``): an empty SQLite database, no tokens, nothing leaves the process."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx

from puerta.api.auth import TokenRegistry
from puerta.app import create_app
from puerta.logs import quiet_logging
from puerta.policy import load_policy
from puerta.settings import Settings


def explain_offline(policy_path: Path, params: dict[str, Any]) -> Any:
    """``GET /api/v1/explain`` against ``policy_path`` with no stored state."""
    policy = load_policy(policy_path)
    quiet_logging()

    async def run(tmp: str) -> httpx.Response:
        settings = Settings(
            config_path=policy_path,
            database_url=f"sqlite+aiosqlite:///{tmp}/explain.db",
            environ={},
            background=False,
        )
        app = create_app(settings, policy=policy, tokens=TokenRegistry({}, None))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://puerta") as client:
                return await client.get("/api/v1/explain", params=params)

    with tempfile.TemporaryDirectory(prefix="puerta-explain-") as tmp:
        response = asyncio.run(run(tmp))
    if response.status_code >= 400:
        raise SystemExit(f"error: {response.json().get('detail', response.text)}")
    return response.json()
