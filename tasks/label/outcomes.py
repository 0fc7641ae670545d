"""Corrections checked against the data contract as soon as they are applied, so outcomes are honest.

A correction the contract would quarantine is `correction_rejected`, not `applied`: the record leaves
the corpus at the label stage with a quarantine row that names the task, the annotator, the decision
and the contract's reasons. Only the corrected records are validated, so `label check` says it in seconds.
"""

from __future__ import annotations

import pandas as pd

from tasks.curate.validate import run_contract
from tasks.records.contract import Contract
from tasks.records.quarantine import quarantine_row


def reject_failing_corrections(labeled: pd.DataFrame, report: list[dict], contract: Contract
                               ) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(records without the rejected corrections, their quarantine rows, the report with their outcome changed)."""
    corrected = {str(r["record_id"]): r for r in report if r["outcome"] == "applied" and r["verdict"] == "correct"}
    rows = labeled[labeled["id"].astype(str).isin(list(corrected))]
    if rows.empty:
        return labeled, [], report
    failing = run_contract(rows, contract).failing
    quarantine, changed = [], {}
    for record in rows[rows["id"].astype(str).isin(list(failing))].to_dict("records"):
        rid, decision = str(record["id"]), corrected[str(record["id"])]
        reasons = "; ".join(failing[rid])
        task = f"{decision.get('where') or 'task'} of {decision['file']}"
        quarantine.append(quarantine_row(
            rid, record.get("input_file"), record.get("input_line"), "label",
            f"correction_rejected: contract: {reasons} ({task}; decision correct by {decision['annotator'] or '?'})",
            f"{record.get('prompt')!r} -> {record.get('completion')!r}"))
        changed[rid] = dict(decision, outcome="correction_rejected",
                            detail=f"correct by {decision['annotator'] or '?'}: contract {contract.name}: {reasons}")
    report = [changed.get(str(r["record_id"]), r) if r["outcome"] == "applied" else r for r in report]
    return labeled[~labeled["id"].astype(str).isin(list(changed))], quarantine, report
