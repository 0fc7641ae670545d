"""What people read about an evaluation: score rows with intervals, per slice, and the gate's checks."""

from __future__ import annotations

import math

from adapterops.escaping import md_cell
from adapterops.refs import EvaluationResult, ReleaseDecision
from tasks.release.gate import comparison


def _number(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _interval(interval: dict | None) -> str:
    if not interval or not math.isfinite(interval["mean"]):
        return "-"
    return f"{interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"


def score_rows(result: EvaluationResult) -> list[dict]:
    """Per score: each model's mean and the candidate's improvement intervals (direction-adjusted); the workload's
    scores, then the retain set's (retain.*), when the contract declares one."""
    rows = []
    for part in filter(None, (result.summary, result.summary.get("retain"))):
        for name, higher in part["directions"].items():
            means = {who: part["means"][who][name] for who in part["means"]}
            rows.append({"score": name, "better": "higher" if higher else "lower",
                         "base": means["base"], "candidate": means["candidate"], "production": means.get("production"),
                         "vs_base": part["vs_base"][name], "vs_production": (part.get("vs_production") or {}).get(name)})
    return rows


def scores_markdown(result: EvaluationResult) -> str:
    summary = result.summary
    production = f"v{result.production_version}" if result.production_version else "none"
    lines = [f"{result.examples} eval records (digest `{result.eval_digest[:19]}`), production: {production}. "
             "Improvement = candidate − other, sign flipped where lower is better; 95% paired bootstrap interval.", "",
             "| score | better | base | candidate | production | improvement vs base | vs production |",
             "|---|---|---|---|---|---|---|"]
    for row in score_rows(result):
        lines.append(f"| {row['score']} | {row['better']} | {_number(row['base'])} | {_number(row['candidate'])} | "
                     f"{_number(row['production'])} | {_interval(row['vs_base'])} | {_interval(row['vs_production'])} |")
    if retain := summary.get("retain"):
        lines += ["", f"retain.* rows: {retain['examples']} general prompts of `{md_cell(retain['source'])}` (digest "
                      f"`{retain['digest'][:19]}`) the adapter must keep answering as the base does; agreement: answer "
                      "identical to the base's; kl: mean KL divergence from the base's next-token distribution."]
    lines += judges_lines(summary)
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


def judges_lines(summary: dict) -> list[str]:
    """Per LLM judge: its agreement with the owner's labels, whether it gates, and the examples it left unscored."""
    judges = summary.get("judges") or {}
    if not judges:
        return []
    calls = summary.get("judge_calls") or {}
    lines = ["", f"LLM judges ({calls.get('used', 0)} of {calls.get('budget', '?')} calls used; an unscored example "
                 "counts for neither side):", "",
             "| judge | kind | kappa vs owner | labelled | gates | examples scored | unscored |", "|---|---|---|---|---|---|---|"]
    for name, judge in judges.items():
        unscored = "; ".join(f"{who}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                             for who, counts in judge["unscored"].items() if counts) or "none"
        kappa = "-" if judge["kappa"] is None else f"{judge['kappa']:.2f}"
        gates = "yes" if judge["gates"] else f"no: {md_cell(judge['reason'])}"
        lines.append(f"| {name} | {judge['judge']} | {kappa} | {judge['scored_labels']} of {judge['labelled']} | {gates} | "
                     f"{judge['scored_share']:.0%} | {unscored} |")
    return lines


def gate_markdown(decision: ReleaseDecision) -> str:
    lines = [f"**{'Promoted' if decision.promoted else 'Held'}**: {md_cell(decision.reason)}", "",
             "| check | score | scope | against | bound | needs | rule |", "|---|---|---|---|---|---|---|"]
    for check in decision.checks:
        bound = check.get("bound", "lower")
        op = comparison(bound, check["against"])
        verdict = f"waived: {md_cell(check['waived'])}" if check.get("waived") else \
            "pass" if check["passed"] else "**FAIL**"
        lines.append(f"| {verdict} | {check['score']} | {md_cell(check['scope'])} | "
                     f"{check['against']} | {bound} {check['lower']:+.4f} | {op} {check['threshold']:+.4f} | {check['rule']} |")
    lines += [f"- {md_cell(note)}" for note in decision.notes]
    return "\n".join(lines)
