"""Wire the loadtester endpoints and the command runner into the app (see ``app.py``)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from puerta.loadtester.metrics import LoadtesterMetrics
from puerta.loadtester.routes import gate_routes
from puerta.loadtester.runner import CommandRunner
from puerta.loadtester.tasks import task_route


def install(app: FastAPI) -> None:
    """Add the loadtester endpoints and their metrics to ``app`` (needs ``app.state.metrics``)."""
    app.state.loadtester_metrics = LoadtesterMetrics(app.state.metrics.registry)
    for path, endpoint, methods in [*gate_routes(), task_route()]:
        app.add_route(path, endpoint, methods=methods, include_in_schema=False)


def start(app: FastAPI) -> CommandRunner:
    """This replica's command runner, for the lifespan (``await runner.stop()`` at shutdown).

    Commands get a scrubbed copy of the process environment (``runner.command_environment``).
    """
    runner = CommandRunner(app.state.loadtester_metrics, os.environ)
    app.state.loadtester_commands = runner
    return runner
