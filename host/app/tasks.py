"""The procrastinate App of edge-bench: the device-job task registered on a connector."""
from __future__ import annotations

from typing import Any

from .queue import TASK_NAME
from .worker import run_device_job


def make_app(url: str) -> Any:
    """A procrastinate App on `url` with the device-job task registered (not opened)."""
    import procrastinate
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    app.task(name=TASK_NAME, pass_context=True)(run_device_job)
    return app
