"""What people read about an evaluation: score rows with intervals, per slice, and the gate's checks."""

from __future__ import annotations

from adapterops.escaping import md_cell
from adapterops.refs import EvaluationResult, ReleaseDecision


def _interval(interval: dict | None) -> str:
    if not interval:
        return "-"
    return f"{interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"


def score_rows(result: EvaluationResult) -> list[dict]:
    """Per score: each model's mean and the candidate's improvement intervals (direction-adjusted)."""
    summary = result.summary
    rows = []
    for name, higher in summary["directions"].items():
        means = {who: summary["means"][who][name] for who in summary["means"]}
        rows.append({"score": name, "better": "higher" if higher else "lower",
                     "base": means["base"], "candidate": means["candidate"], "production": means.get("production"),
                     "vs_base": summary["vs_base"][name],
                     "vs_production": (summary.get("vs_production") or {}).get(name)})
    return rows


def scores_markdown(result: EvaluationResult) -> str:
    summary = result.summary
    production = f"v{result.production_version}" if result.production_version else "none"
    lines = [f"{result.examples} eval records (digest `{result.eval_digest[:19]}`), production: {production}. "
             "Improvement = candidate − other, sign flipped where lower is better; 95% paired bootstrap interval.", "",
             "| score | better | base | candidate | production | improvement vs base | vs production |",
             "|---|---|---|---|---|---|---|"]
    for row in score_rows(result):
        prod = "-" if row["production"] is None else f"{row['production']:.3f}"
        lines.append(f"| {row['score']} | {row['better']} | {row['base']:.3f} | {row['candidate']:.3f} | {prod} | "
                     f"{_interval(row['vs_base'])} | {_interval(row['vs_production'])} |")
    if summary["slices"]:
        lines += ["", "| slice | size | candidate vs base (per score, mean improvement) |", "|---|---|---|"]
        for key, part in summary["slices"].items():
            if not part["judged"]:
                lines.append(f"| {md_cell(key)} | {part['size']} | too small to judge |")
                continue
            text = ", ".join(f"{name} {iv['mean']:+.2f}" for name, iv in part["vs_base"].items())
            lines.append(f"| {md_cell(key)} | {part['size']} | {text} |")
    if result.failures:
        lines += ["", "Scorer failures (scored as failed): " + ", ".join(f"{k}: {v}" for k, v in result.failures.items())]
    return "\n".join(lines)


def gate_markdown(decision: ReleaseDecision) -> str:
    lines = [f"**{'Promoted' if decision.promoted else 'Held'}**: {md_cell(decision.reason)}", "",
             "| check | score | scope | against | bound | needs | rule |", "|---|---|---|---|---|---|---|"]
    for check in decision.checks:
        bound = check.get("bound", "lower")
        op = ">" if check["against"] == "base" and bound == "lower" else ">="
        verdict = f"waived: {md_cell(check['waived'])}" if check.get("waived") else \
            "pass" if check["passed"] else "**FAIL**"
        lines.append(f"| {verdict} | {check['score']} | {md_cell(check['scope'])} | "
                     f"{check['against']} | {bound} {check['lower']:+.4f} | {op} {check['threshold']:+.4f} | {check['rule']} |")
    lines += [f"- {md_cell(note)}" for note in decision.notes]
    return "\n".join(lines)
