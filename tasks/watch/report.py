"""What a watch run shows people: its alerts, one notification line, and the markdown report (record text
escaped with adapterops.escaping)."""

from __future__ import annotations

from adapterops.config import WatchConfig
from adapterops.escaping import md_cell, md_excerpt, md_text


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def alerts(figures: dict, settings: WatchConfig) -> list[str]:
    """The thresholds that tripped, each as a phrase ('31% of this window's traffic is unlike the corpus ...')."""
    if figures["conversations"] < settings.min_conversations:
        return []
    tripped = []
    if figures["novel_share"] - figures["baseline_share"] > settings.novelty_alert:
        tripped.append(f"{_pct(figures['novel_share'])} of this window's traffic is unlike the corpus "
                       f"(baseline {_pct(figures['baseline_share'])})")
    for row in figures["scores"]:
        if row["worse_by"] is not None and row["worse_by"] > settings.score_drop_alert:
            tripped.append(f"{row['score']} {row['release']:.2f} → {row['production']:.2f}")
    feedback = figures["feedback"]
    if feedback["count"] >= 5 and feedback["bad_share"] > settings.bad_feedback_alert:
        tripped.append(f"{_pct(feedback['bad_share'])} of {int(feedback['count'])} rated answers were rated bad")
    return tripped


def message(model_name: str, version: str, tripped: list[str]) -> str:
    return f"{model_name} v{version}: " + "; ".join(tripped) if tripped else ""


def report_markdown(result: dict) -> str:
    """The window's report: figures, scores against release, feedback, the largest novel clusters with examples."""
    lines = [f"**{md_text(result['model_name'])} v{md_text(result['version'])}** at alias "
             f"`{md_text(result['alias'])}`, corpus v{result['corpus_version']}, window {md_text(result['window_start'])} "
             f"→ {md_text(result['window_end'])}: {result['conversations']} recorded conversations.", ""]
    lines += ["**Alerts:** " + ("; ".join(md_text(a) for a in result["alerts"]) if result["alerts"] else "none"), ""]
    lines += ["| figure | production | at release | source |", "|---|---|---|---|",
              f"| novel share (Jaccard < threshold) | {_pct(result['novel_share'])} | "
              f"{_pct(result['baseline_share'])} | held-out set |"]
    for row in result["scores"]:
        before = "-" if row["release"] is None else f"{row['release']:.3f}"
        lines.append(f"| {md_cell(row['score'])} | {row['production']:.3f} | {before} | {row['source'] or '-'} |")
    feedback = result["feedback"]
    lines.append(f"| feedback rated bad | {_pct(feedback['bad_share'])} of {int(feedback['count'])} | - | - |")
    if result["clusters"]:
        lines += ["", "**Largest novel clusters**", ""]
        for number, cluster in enumerate(result["clusters"], start=1):
            words = ", ".join(md_text(w) for w in cluster["words"]) or "-"
            lines.append(f"{number}. {cluster['size']} conversations ({_pct(cluster['share'])} of the window); "
                         f"shared words: {words}")
            lines += [f"   - {md_excerpt(example['text'])}" for example in cluster["examples"]]
    return "\n".join(lines) + "\n"
