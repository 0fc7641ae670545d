"""`adapterops eval`: score any registered adapter version against the base and another version; moves no alias."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapterops.errors import AdapterOpsError
from adapterops.refs import AdapterRef, EvaluationResult

out = Console()


def scores_table(result: EvaluationResult, title: str) -> Table:
    """Base → candidate (→ other) per score, with the candidate's improvement intervals."""
    from tasks.evaluate import score_rows

    def interval(iv):
        return "-" if not iv or iv["mean"] != iv["mean"] else f"{iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"

    other = f"v{result.production_version}" if result.production_version else None
    table = Table(title=title)
    for column in ("score", "base", "candidate") + ((other,) if other else ()) + ("vs base (95% CI)",) + \
            ((f"vs {other} (95% CI)",) if other else ()):
        table.add_column(column)
    def number(value):
        return "-" if value is None or value != value else f"{value:.3f}"    # NaN: no example scored

    for row in score_rows(result):
        cells = [row["score"], number(row["base"]), number(row["candidate"])]
        cells += [number(row["production"])] if other else []
        cells += [interval(row["vs_base"])] + ([interval(row["vs_production"])] if other else [])
        table.add_row(*cells)
    return table


def judges_table(result: EvaluationResult) -> Table | None:
    """Per LLM judge: its kappa with the owner's labels, whether it gates (or why not), the examples it left unscored."""
    judges = result.summary.get("judges") or {}
    if not judges:
        return None
    calls = result.summary.get("judge_calls") or {}
    table = Table("judge", "kappa vs owner", "labelled", "gates", "scored", "unscored",
                  title=f"LLM judges ({calls.get('used', 0)} of {calls.get('budget', '?')} calls)")
    for name, judge in judges.items():
        unscored = "; ".join(f"{who}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                             for who, counts in judge["unscored"].items() if counts) or "none"
        table.add_row(name, "-" if judge["kappa"] is None else f"{judge['kappa']:.2f}",
                      f"{judge['scored_labels']} of {judge['labelled']}",
                      "yes" if judge["gates"] else f"[yellow]no[/]: {escape(judge['reason'])}",
                      f"{judge['scored_share']:.0%}", unscored)
    return table


def gate_table(checks: list[dict], title: str) -> Table:
    from tasks.release import comparison

    table = Table("", "score", "scope", "against", "bound", "needs", title=title)
    for check in checks:
        bound = check.get("bound", "lower")
        op = comparison(bound, check["against"])
        verdict = "[yellow]waived[/]" if check.get("waived") else "pass" if check["passed"] else "[bold red]FAIL[/]"
        table.add_row(verdict, check["score"], escape(check["scope"]), check["against"],
                      f"{bound} {check['lower']:+.4f}", f"{op} {check['threshold']:+.4f}"
                      + (f" (waived: {escape(check['waived'])})" if check.get("waived") else ""))
    return table


def adapter_of_version(model_name: str, version: str) -> AdapterRef:
    """The adapter reference a registered version was trained as (its training run's adapter.json)."""
    import mlflow

    from tasks.release import registered_version
    from tasks.train import load_adapter_ref

    found = registered_version(mlflow.MlflowClient(), model_name, version)
    adapter = load_adapter_ref(found.tags.get("train.run_id") or found.run_id)
    return adapter.model_copy(update={"version": str(found.version),
                                      "model_id": getattr(found, "model_id", None) or adapter.model_id})


def evaluate_version(name: str = typer.Option("demo", "--name", help="Pipeline name (the config's `name`)."),
                     version: str = typer.Option(..., "--version", help="Registered adapter version to score."),
                     against: Optional[str] = typer.Option(None, "--against", help="Version to compare with (default: production)."),
                     config: Optional[str] = typer.Option(None, "--config", help="YAML config (default: the demo's settings).")) -> None:
    """Score a registered adapter version against the base and another version on the current eval set; logs it, moves no alias."""
    from adapterops.config import load_config, parse_config
    from cli.common import setup

    run_config = load_config(config) if config else parse_config({"name": name})
    if run_config.name != name:
        run_config = run_config.model_copy(update={"name": name})
    setup()
    from adapterops.base_models import resolve_base_model
    from tasks.corpus import corpus_ref, list_versions
    from tasks.evaluate import evaluate_adapter
    from tasks.release import decide

    versions = list_versions(name)
    if not versions:
        raise AdapterOpsError(f"Pipeline {name!r} has no corpus version, so no eval set; run `adapterops run CONFIG` first.")
    corpus = corpus_ref(name, versions[-1].data.tags["corpus.digest"])
    adapter = adapter_of_version(run_config.release.model_name, version)
    result = evaluate_adapter(run_config.evaluation, run_config.recipe, corpus, adapter,
                              resolve_base_model(run_config.recipe), against=against or "production")
    out.print(scores_table(result, f"{run_config.release.model_name} v{version} on corpus v{corpus.version}'s eval set "
                                   f"({result.examples} records)"))
    if judges := judges_table(result):
        out.print(judges)
    decision = decide(run_config.release.gate, result.summary, run_config.release.waivers)
    out.print(gate_table(decision.as_dict()["checks"], "Release gate (not applied: eval moves no alias)"))
    out.print(f"gate: {'would promote' if decision.promote else 'would hold'} — {escape(decision.reason())}; "
              f"logged as MLflow run {result.run_id}", highlight=False)
