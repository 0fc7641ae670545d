"""`adapterops corpus list | show | diff | approve | reject`: corpus versions and their owners' decisions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from adapterops.errors import AdapterOpsError
from adapterops.escaping import terminal  # record-derived text: controls dropped, Rich markup escaped
from cli.common import setup

app = typer.Typer(no_args_is_help=True, help="Corpus versions: list, inspect, compare, approve or reject.")
out = Console()
NAME = typer.Option("demo", "--name", help="Pipeline name (the config's `name`).")


def shown_time(millis: int | None) -> str:
    """An MLflow timestamp (ms since the epoch) as a UTC time a person reads: 2026-12-04 00:52."""
    from datetime import datetime, timezone

    if not millis:
        return "-"
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def versions_table(name: str) -> Table:
    """Every version of a pipeline's corpus with its digest, status, approver and counts."""
    from tasks.corpus import displayed_status
    from tasks.corpus import list_versions as versions

    table = Table(title=f"Corpus versions of {name}")
    for column in ("version", "digest", "status", "approver", "created (UTC)", "kept", "duplicates", "quarantined"):
        table.add_column(column)
    for run in versions(name):
        t, m = run.data.tags, run.data.metrics
        table.add_row(*map(terminal, (t["corpus.version"], t["corpus.digest"][:19], displayed_status(run),
                                      t.get("approval.approver", ""), shown_time(run.info.start_time))),
                      *(str(int(m.get(f"records.{k}", 0))) for k in ("kept", "duplicates", "quarantined")))
    return table


@app.command("list")
def list_versions(name: str = NAME) -> None:
    """Every version with its digest, status, approver and counts."""
    setup()
    out.print(versions_table(name))


@app.command()
def show(version: int, name: str = NAME,
         sample: int = typer.Option(5, help="Added and changed records shown, before → after.")) -> None:
    """A version's manifest, decision log and review: curation, changes against the last approved version, links."""
    setup()
    from adapterops.config import Config
    from tasks.approve import decision_log, version_review
    from tasks.corpus import get_version, load_manifest

    run = get_version(name, version)
    manifest = load_manifest(run)
    out.print(f"[bold]{name} corpus v{version}[/]  status [bold]{run.data.tags.get('corpus.status')}[/]  "
              f"digest {manifest['digest']}")
    out.print_json(json.dumps({k: manifest[k] for k in ("counts", "contract", "contract_version", "parent",
                                                        "code_version", "created", "sources")}, default=str))
    for entry in decision_log(run):
        out.print(terminal(f"  decision {entry['seq']}: {entry['time']} {entry['approver']} {entry['decision']} "
                           f"{entry['note']}"), markup=False, highlight=False)
    defaults = Config()
    out.print(Markdown(version_review(name, run, defaults.mlflow_ui_url, defaults.prefect_ui_url, sample)))


@app.command()
def diff(a: int, b: int, name: str = NAME) -> None:
    """Records added, removed and changed from version A to version B, and per-source counts."""
    setup()
    from tasks.corpus import diff_markdown, diff_records, get_version, version_records

    old, new = get_version(name, a), get_version(name, b)
    out.print(Markdown(diff_markdown(diff_records(version_records(old), version_records(new)), f"v{a}", f"v{b}")))


def _decide(version: int, name: str, approver: str, note: str, decision: str, yes: bool, key_file: Path | None) -> None:
    if not yes and not sys.stdin.isatty():
        raise AdapterOpsError(f"Not asking for confirmation without a terminal: add --yes to record '{decision}' "
                              f"for {name} corpus v{version}.")
    setup()
    from tasks.approve import record_decision
    from tasks.corpus import diff_against_last_approved, get_version

    run = get_version(name, version)
    out.print(Markdown(diff_against_last_approved(name, run)))
    if not yes and not typer.confirm(f"Record '{decision}' for {name} corpus v{version} as {approver}?"):
        raise typer.Exit(1)
    # a person at the CLI: `policy:*` approvers are refused (they decide only inside `approval: auto` runs)
    record = record_decision(name, run.data.tags["corpus.digest"], approver, decision, note, key_file=key_file)
    out.print(terminal(f"{name} corpus v{version} {decision} by {approver} at {record['time']} "
                       f"(digest {record['digest'][:19]}), signed with their key."), markup=False, highlight=False)
    from flows.approve import resume_waiting_runs  # runs paused on this version go on, or end, with it

    answer = {"approver": approver, "decision": {"approved": "approve", "rejected": "reject"}[decision], "note": note}
    if resumed := resume_waiting_runs(name, version, answer):
        out.print(f"Resumed the flow runs waiting on v{version}: {', '.join(resumed)}.")


AS = typer.Option(..., "--as", help="Your name as listed in the contract's owners; signs with your key.")
KEY_FILE = typer.Option(None, "--key-file", help="Your private key; default: ADAPTEROPS_HOME/keys/NAME.key.")
NOTE = typer.Option("", help="Why, for the decision log.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation after the diff.")


@app.command()
def approve(version: int, approver: str = AS, note: str = NOTE, name: str = NAME, yes: bool = YES,
            key_file: Optional[Path] = KEY_FILE) -> None:
    """Approve a pending version (contract owners only, signed); training may then use it."""
    _decide(version, name, approver, note, "approved", yes, key_file)


@app.command()
def reject(version: int, approver: str = AS, note: str = NOTE, name: str = NAME, yes: bool = YES,
           key_file: Optional[Path] = KEY_FILE) -> None:
    """Reject a pending version (contract owners only, signed); training will refuse it."""
    _decide(version, name, approver, note, "rejected", yes, key_file)
