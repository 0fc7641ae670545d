"""What an owner reads before deciding a corpus version: its curation, a sample of changes, duplicates, labels, links."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from adapterops.escaping import md_code, md_excerpt
from tasks.corpus.versions import diff_records, last_approved, load_manifest, version_records
from tasks.label.policy import agreement_lines
from tasks.records.quarantine import breakdown_markdown, reason_breakdown


def curation_lines(counts: dict, quarantine_reasons: list[dict], pii: dict | None, contract: dict,
                   quarantine_table: str = "quarantine.parquet") -> list[str]:
    """In / kept / duplicates / quarantined by reason (one example each) / PII / contract result, as markdown lines."""
    lines = ["### Curation", "", "| input | kept | exact duplicates | near duplicates | quarantined |", "|---|---|---|---|---|",
             f"| {counts['input']} | {counts['kept']} | {counts['exact_duplicates']} | {counts['near_duplicates']} | "
             f"{counts['quarantined']} |", ""]
    if quarantine_reasons:
        lines += ["Quarantined by reason:", "", *breakdown_markdown(quarantine_reasons, quarantine_table), ""]
    if pii:
        found = [d for d in pii["detectors"] if d["found"]]
        lines.append("PII: " + ("; ".join(f"{d['detector']} in {d['records']} record(s), {d['action']}" for d in found)
                                if found else "none found") + " (the contract's policy).")
        lines.append("")
    verdict = "passed" if contract["success"] else "failed"
    lines.append(f"Contract {contract['name']} v{contract['version']}: {verdict} "
                 f"({contract['passed']}/{contract['evaluated']} expectations).")
    lines += [f"- failing: `{f['type']}` on {md_excerpt(f['column'] or 'the table')} "
              f"({f['severity']}, {f['unexpected']} row(s))" for f in contract["failing"]]
    return lines


def change_lines(diff: dict, old: pd.DataFrame, new: pd.DataFrame, sample: int) -> list[str]:
    """A bounded sample of added and changed records, with before → after for each changed field."""
    fields = ("source", "timestamp", "prompt", "completion")
    before, after = old.set_index("id"), new.set_index("id")
    lines = []
    if diff["added"]:
        lines += [f"**Added** ({min(sample, len(diff['added']))} of {len(diff['added'])}):", ""]
        lines += [f"- {md_code(i)} {md_excerpt(after.at[i, 'prompt'])} → "
                  f"{md_excerpt(after.at[i, 'completion'])}" for i in diff["added"][:sample]]
        lines.append("")
    if diff["changed"]:
        lines += [f"**Changed** ({min(sample, len(diff['changed']))} of {len(diff['changed'])}):", ""]
        for i in diff["changed"][:sample]:
            changes = [f"{f}: {md_excerpt(before.at[i, f])} → {md_excerpt(after.at[i, f])}"
                       for f in fields if str(before.at[i, f]) != str(after.at[i, f])]
            lines.append(f"- {md_code(i)} " + "; ".join(changes))
        lines.append("")
    return lines


def cluster_lines(report: dict | None, top: int) -> list[str]:
    """The dedup report's largest clusters: the record kept and how many were removed with it."""
    clusters = (report or {}).get("largest_clusters", [])[:top]
    if not clusters:
        return []
    lines = ["### Largest duplicate clusters", ""]
    for c in clusters:
        kinds = sorted({d["kind"] for d in c["duplicates"]})
        lines.append(f"- kept {md_code(c['kept_id'])} with {c['size'] - 1} removed ({', '.join(kinds)}): "
                     f"{md_excerpt(c['kept_text'])}")
    return lines + [""]


def label_lines(outcomes: dict, agreement: dict | None = None) -> list[str]:
    """Label outcomes per annotation, the disputed tasks (not applied: the owner settles them), agreement per round."""
    if not outcomes:
        return []
    lines = ["### Labels", "", "| outcome | annotations |", "|---|---|",
             *(f"| {md_excerpt(k)} | {v} |" for k, v in outcomes.items()), ""]
    if not agreement:
        return lines
    disputed = agreement.get("disputed") or []
    policy = md_excerpt(agreement.get("policy"))
    if disputed:
        lines += [f"**Disputed** ({len(disputed)} tasks, not applied under policy {policy}):", ""]
        lines += [f"- {md_code(d['record_id'])}" + (f" (task {md_excerpt(d['task'])})" if d["task"] else "")
                  + ": " + "; ".join(md_excerpt(v) for v in d["verdicts"]) for d in disputed] + [""]
    else:
        lines += [f"No disputed tasks (policy {policy}).", ""]
    return lines + agreement_lines(agreement.get("rounds") or [], md_excerpt)


def diff_summary(diff: dict | None, old_label: str | None, new_label: str, records: int) -> str:
    """Counts of added, removed and changed records, and records per source, against the last approved version."""
    if diff is None or old_label is None:
        return f"{new_label} is the first version to be approved: {records} records."
    lines = [f"**{old_label} → {new_label}**: {len(diff['added'])} added, {len(diff['removed'])} removed, "
             f"{len(diff['changed'])} changed", "", "| source | before | after |", "|---|---|---|"]
    lines += [f"| {md_excerpt(s)} | {c['old']} | {c['new']} |" for s, c in diff.get("sources", {}).items()]
    return "\n".join(lines)


def review_markdown(parts: dict, sample: int, top_clusters: int = 3) -> str:
    """The whole review from the parts the wrapper read (see version_review)."""
    lines = [f"[MLflow corpus run]({parts['links']['mlflow']})"
             + (f" · [Prefect curate run]({parts['links']['prefect']})" if parts["links"].get("prefect") else ""), ""]
    lines += curation_lines(parts["counts"], parts["quarantine_reasons"], parts["pii"], parts["contract"],
                            parts.get("quarantine_table", "quarantine.parquet")) + [""]
    lines += ["### Changes", "", diff_summary(parts.get("diff"), parts.get("old_label"), parts["new_label"],
                                              len(parts["new"])), ""]
    if changes := parts.get("diff") or parts.get("first"):
        lines += change_lines(changes, parts["old"], parts["new"], sample)
    lines += cluster_lines(parts["dedup_report"], top_clusters)
    lines += label_lines(parts["label_outcomes"], parts.get("label_agreement"))
    return "\n".join(lines).rstrip() + "\n"


def contract_summary(validation: dict, name: str, version: int) -> dict:
    """The GX result reduced to what an owner reads: passed or not, and each failing expectation."""
    failing = [{"type": r["expectation_config"]["type"], "column": r["expectation_config"]["kwargs"].get("column"),
                "severity": r["expectation_config"].get("meta", {}).get("severity", ""),
                "unexpected": r.get("result", {}).get("unexpected_count", "?")}
               for r in validation.get("results", []) if not r.get("success")]
    stats = validation.get("statistics", {})
    return {"name": name, "version": version, "success": bool(validation.get("success")), "failing": failing,
            "passed": stats.get("successful_expectations", 0), "evaluated": stats.get("evaluated_expectations", 0)}


# --- wrapper: read the version's files and MLflow ------------------------------------------------

def version_review(pipeline: str, run, mlflow_ui_url: str, prefect_ui_url: str, sample: int) -> str:
    """The review of a corpus version against the last approved one, from its folder and its MLflow run."""
    folder = Path(run.data.tags["corpus.path"])
    manifest = load_manifest(run)

    def optional_json(name):
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    labels = pd.read_parquet(folder / "labels.parquet") if (folder / "labels.parquet").is_file() else None
    last = last_approved(pipeline, other_than=run)
    new = version_records(run)
    curate_run = run.data.tags.get("prefect.curate_flow_run_id")
    parts = {"counts": manifest["counts"], "quarantine_reasons": reason_breakdown(quarantine)[:12],
             "quarantine_table": str(folder / "quarantine.parquet"),
             "pii": optional_json("pii.json"), "dedup_report": optional_json("dedup_report.json"),
             "contract": contract_summary(optional_json("validation.json") or {}, manifest["contract"],
                                          manifest["contract_version"]),
             "label_outcomes": labels["outcome"].value_counts().to_dict() if labels is not None else {},
             "label_agreement": optional_json("labels_agreement.json"),
             "new_label": f"v{run.data.tags['corpus.version']}", "new": new,
             "links": {"mlflow": f"{mlflow_ui_url.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/"
                                 f"{run.info.run_id}?workflowType=machine_learning",
                       "prefect": f"{prefect_ui_url.rstrip('/')}/runs/flow-run/{curate_run}" if curate_run else None}}
    if last is not None:
        parts["old"] = version_records(last)
        parts["diff"] = diff_records(parts["old"], new)
        parts["old_label"] = f"v{last.data.tags['corpus.version']} (approved)"
    elif len(new):       # a first version: its records are all added
        parts["old"] = new.iloc[0:0]
        parts["first"] = {"added": sorted(new["id"].astype(str)), "changed": [], "removed": []}
    return review_markdown(parts, sample)
