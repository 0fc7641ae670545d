"""`adapterops notify setup --webhook URL`: tell people about waiting versions, failed runs and releases."""

from __future__ import annotations

import typer
from rich.console import Console

from cli.common import setup as prepare

app = typer.Typer(no_args_is_help=True, help="Notifications through Prefect automations (deployments/automations.yaml).")
out = Console()


@app.command()
def setup(webhook: str = typer.Option(..., "--webhook", help="URL that receives JSON {subject, body, name}.")) -> None:
    """Create the webhook block and the automations on the Prefect server named by PREFECT_API_URL."""
    prepare()
    from prefect.settings import get_current_settings

    from adapterops.errors import AdapterOpsError
    from flows.notify import setup_notifications

    if not get_current_settings().api.url:
        raise AdapterOpsError("Notifications run on a Prefect server: set PREFECT_API_URL (e.g. "
                              "http://127.0.0.1:4200/api) and run this again.")
    for name in setup_notifications(webhook):
        out.print(f"automation {name} → {webhook}")
