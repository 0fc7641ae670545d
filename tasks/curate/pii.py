"""The PII stage: a contract's policy for each detector (e-mail, phone, payment card, IBAN, US SSN, IP address;
the detectors are tasks/records/pii_detect.py) applied to the records.

The policy acts on the corpus records themselves: a redacted value is replaced in the record, so the corpus
version and everything exported from it downstream (labeling, training) never carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adapterops.refs import PiiResult
from adapterops.storage import write_json, write_parquet
from tasks.records.contract import Contract
from tasks.records.pii_detect import DETECTORS, PiiPolicy, find_pii, redact
from tasks.records.quarantine import QUARANTINE_FIELDS, quarantine_row


@dataclass
class PiiScan:
    records: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def report(self, policy: PiiPolicy) -> list[dict]:
        return [{"detector": kind, "action": getattr(policy, kind), **self.counts.get(kind, {"found": 0, "records": 0})}
                for kind in DETECTORS]


def apply_policy(records: list[dict], policy: PiiPolicy) -> PiiScan:
    """Quarantine, redact or allow each record's PII as the policy says; counts findings per detector."""
    out = PiiScan(counts={kind: {"found": 0, "records": 0} for kind in DETECTORS})
    redacting = {kind for kind in DETECTORS if getattr(policy, kind) == "redact"}
    for record in records:
        findings = {column: find_pii(record.get(column)) if isinstance(record.get(column), str) else []
                    for column in policy.columns}
        kinds = sorted({f.kind for fs in findings.values() for f in fs})
        for kind in kinds:
            out.counts[kind]["records"] += 1
            out.counts[kind]["found"] += sum(f.kind == kind for fs in findings.values() for f in fs)
        blocking = [k for k in kinds if getattr(policy, k) == "quarantine"]
        if blocking:
            raw = " | ".join(f"{c}: {redact(record[c], fs)}" for c, fs in findings.items() if record.get(c))
            out.quarantine.append(quarantine_row(record["id"], record.get("input_file"), record.get("input_line"),
                                                 "pii", "pii: " + ", ".join(blocking), raw))
            continue
        clean = dict(record)
        for column, fs in findings.items():
            if fs and redacting & {f.kind for f in fs}:
                clean[column] = redact(record[column], fs, redacting)
        out.records.append(clean)
    return out


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

def pii_file(records_path: str, contract: Contract, stage_dir) -> PiiResult:
    """pii_clean.parquet (redacted), pii_quarantine.parquet and pii.json (counts) under stage_dir; the
    per-detector rows come back as `detectors` for the flow to show."""
    import pandas as pd

    stage_dir = Path(stage_dir)
    frame = pd.read_parquet(records_path)
    result = apply_policy(frame.to_dict("records"), contract.pii)
    report = result.report(contract.pii)
    write_parquet(pd.DataFrame(result.records, columns=list(frame.columns)), stage_dir / "pii_clean.parquet")
    write_parquet(pd.DataFrame(result.quarantine, columns=list(QUARANTINE_FIELDS)), stage_dir / "pii_quarantine.parquet")
    write_json({"contract": contract.name, "contract_version": contract.version, "detectors": report},
               stage_dir / "pii.json")
    return PiiResult(records=str(stage_dir / "pii_clean.parquet"), quarantine=str(stage_dir / "pii_quarantine.parquet"),
                     report=str(stage_dir / "pii.json"), input=len(frame), kept=len(result.records),
                     quarantined=len(result.quarantine),
                     redacted=sum(r["records"] for r in report if r["action"] == "redact"),
                     detectors=report, contract=contract.name, contract_version=contract.version)
