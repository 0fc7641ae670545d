"""`adapterops release history | rollback`: the production alias's moves, and moving it back."""

import getpass

import typer
from rich.console import Console
from rich.table import Table

from adapterops.config import ReleaseConfig
from adapterops.escaping import terminal
from cli.common import setup

app = typer.Typer(no_args_is_help=True, help="Releases: the production audit trail and rollbacks.")
out = Console()
MODEL = typer.Option(ReleaseConfig().model_name, "--model", help="Registered model (the config's release.model_name).")


@app.command()
def history(model: str = MODEL) -> None:
    """Every move of the production alias: promotions by the release gate and rollbacks, oldest first."""
    setup()
    from tasks.release import production_history

    moves = production_history(model)
    if not moves:
        out.print(f"No moves of {terminal(model)}'s production alias are recorded (moves made before AdapterOps kept "
                  "this trail are not in it).")
        return
    table = Table("time", "action", "version", "previous", "by", "reason", title=f"Production of {model}")
    for entry in moves:
        action = entry["action"] + ("" if entry.get("status", "done") == "done" else f" ({entry['status']})")
        table.add_row(*map(terminal, (entry["time"], action, "v" + entry["version"],
                                      "v" + entry["previous"] if entry["previous"] else "-", entry["by"], entry["reason"])))
    out.print(table)


@app.command()
def rollback(reason: str = typer.Option(..., help="Why: kept in the audit trail."),
             to: str = typer.Option(None, "--to", help="Version to put in production (default: the one before the last move)."),
             by: str = typer.Option(None, "--as", help="Who rolls back (default: the login name)."),
             model: str = MODEL) -> None:
    """Move production back to an earlier version that passed the release gate."""
    setup()
    from tasks.release import rollback_production

    entry = rollback_production(model, to, by or getpass.getuser(), reason)
    finished = " — finished the rollback an interrupted run had recorded" if entry.get("reconciled") else ""
    out.print(terminal(f"{model}: production v{entry['previous']} → v{entry['version']} ({entry['time']}, "
                       f"{entry['by']}: {reason}){finished}"), highlight=False)
