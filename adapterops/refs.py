"""What the steps hand each other: frozen, typed references (paths, digests, run ids and counts), never
payloads. Each is built in one place, named in its docstring; Prefect validates them as flow parameters
and serialises them as results, and `model_dump(mode="json")` is what goes to MLflow or another worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class BaseModelRef:
    """Where the base model comes from: what the registry records instead of its weights
    (resolved from the config by adapterops.base_models.resolve_base_model)."""
    name: str
    path: str
    revision: str


class Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CorpusRef(Ref):
    """A stored corpus version. Built by tasks.corpus.version_ref only: for a new version, a reused one,
    the curation cache and an approval event alike."""
    pipeline: str
    version: int
    digest: str
    path: str                      # the folder it was curated into (tasks.corpus_fetch finds it elsewhere)
    run_id: str                    # its MLflow run: manifest, files, signed decisions
    new: bool                      # curated by this run (False: an existing version with the same digest)
    counts: dict[str, int]
    contract: str
    contract_version: int
    owners: tuple[str, ...]


class AdapterRef(Ref):
    """A registered adapter version as training produced it. Built by tasks.train_run.train_adapter, which
    also logs it as the training run's adapter.json (read back by tasks.train_run.load_adapter_ref)."""
    model_name: str
    version: str
    run_id: str
    model_id: str | None = None    # the logged model the evaluation's metrics link to
    recipe: str
    adapter_dir: str
    adapter_bytes: int
    logged_bytes: int
    base_name: str
    base_path: str
    base_revision: str
    final_loss: float
    steps: int
    device: str
    examples: int
    truncated: int
    resumed_from_step: int

    @property
    def base(self) -> BaseModelRef:
        return BaseModelRef(self.base_name, self.base_path, self.base_revision)


class ReusedAdapter(Ref):
    """The version already trained from this corpus and recipe, so nothing trains twice.
    Built by tasks.train_run.reusable_version."""
    model_name: str
    version: str
    aliases: list[str]
    decision: str                  # its release decision ("" when none was made)
    reason: str


class EvaluationResult(Ref):
    """Base vs candidate (vs production) on a corpus version's eval set. Built by tasks.evaluate.evaluate_adapter."""
    model_name: str
    version: str
    production_version: str | None  # the version it was compared with; None: the base only
    eval_digest: str
    examples: int
    summary: dict[str, Any]        # tasks.statistics.summarise: means, intervals, slices, directions
    failures: dict[str, int]       # scorer failures (scored as failed), by score
    generated_tokens: int
    seconds: float
    run_id: str                    # the eval run in MLflow


class StagingResult(Ref):
    """The smoke suite over HTTP against the candidate served at alias `staging`. Built by
    tasks.staging.stage_candidate from tasks.staging.judge_smoke's figures."""
    model_name: str
    version: str
    passed: bool
    reasons: list[str]
    requests: int
    failed: int
    empty: int
    format_share: float
    format_checked: bool
    differ: int
    p95_seconds: float
    p50_seconds: float
    server_log: str
    server_pid: int | None


class ReleaseDecision(Ref):
    """What the release step did with a candidate and why. Built by tasks.registry.release_adapter."""
    model_name: str
    version: str
    promoted: bool
    reason: str
    previous_production: str | None
    time: str
    checks: list[dict[str, Any]]   # the gate's checks with their figures (tasks.gate.Decision.as_dict)
    notes: list[str]
    staging: StagingResult | None


# --- curation: what each stage hands on, and the bundle that becomes a corpus version ---------------

class StageResult(Ref):
    """A curation stage's quarantine file and its counts (every record read is kept or quarantined)."""
    quarantine: str
    input: int
    kept: int
    quarantined: int


class IngestResult(StageResult):
    """Built by tasks.inputs.ingest_files."""
    records: str
    files: list[dict[str, Any]]    # per file: path, format, digest, rows read and quarantined


class PiiResult(StageResult):
    """Built by tasks.pii.pii_file."""
    records: str                   # redacted
    report: str
    redacted: int
    detectors: list[dict[str, Any]]
    contract: str
    contract_version: int


class LabelResult(StageResult):
    """Built by tasks.labeling.label_file."""
    records: str                   # with the applied decisions
    report: str                    # labels.parquet: one row per annotation and what became of it
    agreement: str
    files: list[dict[str, Any]]
    policy: str
    reviewer: str | None
    metrics: dict[str, float | int]
    disputed: int
    outcomes: dict[str, int]
    applied: dict[str, int]


class DedupResult(Ref):
    """Built by tasks.dedup_files.finish_dedup, however dedup ran (one process, shards, the CLI)."""
    kept_records: str
    duplicates: str
    report: str
    signatures: str | None
    input: int
    kept: int
    exact: int
    near: int
    bands_rows: list[int]


class ValidationResult(StageResult):
    """Built by tasks.validate.validate_file."""
    valid: str                     # the records that pass the contract
    result: str                    # Great Expectations' full result (validation.json)
    data_docs: str
    contract: str
    contract_version: int
    owners: list[str]


class SplitResult(Ref):
    """Built by tasks.split.split_file."""
    train: str
    heldout: str
    eval: str
    quarantine: str
    eval_quarantine: str
    input: int
    train_count: int
    heldout_count: int
    eval_count: int
    quarantined: int
    eval_quarantined: int


class CurationStages(Ref):
    """Every stage's result, what tasks.corpus.publish_version turns into a corpus version."""
    ingest: IngestResult
    pii: PiiResult
    dedup: DedupResult
    validation: ValidationResult
    split: SplitResult
    eval_ingest: IngestResult
    eval_pii: PiiResult
    label: LabelResult | None = None
