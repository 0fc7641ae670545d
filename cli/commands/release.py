"""`adapterops release history | promote | rollback`: the production alias's moves, and moving it by hand
(a releaser of the contract, signed with their key)."""

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from adapterops.config import ReleaseConfig
from adapterops.escaping import terminal
from cli.common import setup

app = typer.Typer(no_args_is_help=True, help="Releases: the production audit trail and rollbacks.")
out = Console()
MODEL = typer.Option(ReleaseConfig().model_name, "--model", help="Registered model (the config's release.model_name).")
AS = typer.Option(..., "--as", help="Your name as the contract lists it among `releasers` (default: its owners); "
                                    "signs with your key.")
KEY_FILE = typer.Option(None, "--key-file", help="Your private key; default: ADAPTEROPS_HOME/keys/NAME.key.")


@app.command()
def history(model: str = MODEL) -> None:
    """Every move of the production alias: promotions by the release gate and rollbacks, oldest first."""
    setup()
    from tasks.release import production_history, release_contract, verify_move

    moves = production_history(model)
    contracts: dict[str, object] = {}
    if not moves:
        out.print(f"No moves of {terminal(model)}'s production alias are recorded (moves made before AdapterOps kept "
                  "this trail are not in it).")
        return
    signed = any(entry.get("signature") for entry in moves)     # trails from before signing show no column
    columns = ("time", "action", "version", "previous", "by") + (("signature",) if signed else ()) + ("reason",)
    table = Table(*columns, title=f"Production of {model}")
    for entry in moves:
        action = entry["action"] + ("" if entry.get("status", "done") == "done" else f" ({entry['status']})")
        signature = (_signature(model, entry, contracts, release_contract, verify_move),) if signed else ()
        table.add_row(*map(terminal, (entry["time"], action, "v" + entry["version"],
                                      "v" + entry["previous"] if entry["previous"] else "-", entry["by"],
                                      *signature, entry["reason"])))
    out.print(table)


def _signature(model: str, entry: dict, contracts: dict, release_contract, verify_move) -> str:
    """Whether the move's envelope verifies against the contract of the version it put in production."""
    if entry["action"] not in ("promote", "rollback") or entry.get("status") == "held":
        return "-"
    if not entry.get("signature"):
        return "unsigned"
    import mlflow

    from adapterops.errors import AdapterOpsError

    if entry["version"] not in contracts:
        try:
            contracts[entry["version"]] = release_contract(mlflow.MlflowClient().get_model_version(model, entry["version"]))[0]
        except (AdapterOpsError, Exception):   # a missing corpus or version: the move is shown, unverifiable
            contracts[entry["version"]] = None
    return verify_move(model, entry, contracts[entry["version"]])


@app.command()
def promote(version: str = typer.Argument(..., help="Model version to put in production."),
            reason: str = typer.Option(..., help="Why: kept in the audit trail."),
            by: str = AS, key_file: Optional[Path] = KEY_FILE, model: str = MODEL) -> None:
    """Put a version in production by hand: a releaser of its corpus's contract, signed; its corpus approval is verified."""
    setup()
    from tasks.release import promote_production

    entry = promote_production(model, version, by, reason, key_file)
    out.print(terminal(f"{model}: production {'v' + entry['previous'] if entry['previous'] else 'unset'} → "
                       f"v{entry['version']} ({entry['time']}, {entry['by']}: {reason}), signed with their key."),
              highlight=False)


@app.command()
def rollback(reason: str = typer.Option(..., help="Why: kept in the audit trail."),
             to: str = typer.Option(None, "--to", help="Version to put in production (default: the one before the last move)."),
             by: str = AS, key_file: Optional[Path] = KEY_FILE, model: str = MODEL) -> None:
    """Move production back to an earlier version that passed the release gate (a releaser, signed)."""
    setup()
    from tasks.release import rollback_production

    entry = rollback_production(model, to, by, reason, key_file)
    finished = " — finished the rollback an interrupted run had recorded" if entry.get("reconciled") else ""
    out.print(terminal(f"{model}: production v{entry['previous']} → v{entry['version']} ({entry['time']}, "
                       f"{entry['by']}: {reason}){finished}"), highlight=False)
