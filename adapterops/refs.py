"""What the steps hand each other: frozen, typed references (paths, digests, run ids and counts), never
payloads. Each is built in one place, named in the comment above it; Prefect validates them as flow parameters
and serialises them as results, and `model_dump(mode="json")` is what goes to MLflow or another worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class BaseModelRef:
    """Where the base model comes from: what the registry records instead of its weights
    (resolved from the config by adapterops.base_models.resolve_base_model)."""
    name: str
    path: str
    revision: str


class Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# built only by tasks.corpus.versions.version_ref: for a new version, a reused one, the curation cache and an approval event
class CorpusRef(Ref):
    """A stored corpus version: training refuses it unless its owner's signed approval names this digest and
    its files still hash to it. Run `adapterops corpus show VERSION --name PIPELINE` for these values."""
    pipeline: str = Field(description="The pipeline (the config's `name`).")
    version: int = Field(description="The corpus version number.")
    digest: str = Field(description="The version's content digest (sha256:…).")
    path: str = Field(description="The folder it was curated into; a worker without it fetches the files from the run.")
    run_id: str = Field(description="The version's MLflow run: manifest, files and signed decisions.")
    new: bool = Field(False, description="Curated by the run that made this reference (else an existing version).")
    counts: dict[str, int] = Field(description="Records in, kept, removed as duplicates, quarantined, per split.")
    contract: str = Field(description="The data contract it was validated with.")
    contract_version: int = Field(description="That contract's version.")
    owners: tuple[str, ...] = Field(description="The contract's owners, who may approve the version.")


# built only by tasks.train.run.train_adapter, which logs it as the run's adapter.json (load_adapter_ref reads it)
class AdapterRef(Ref):
    """A registered adapter version as training produced it: weights, base model and training run."""
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
    chat_template_digest: str = ""   # the template stored with the adapter (chat_template.jinja) that it renders with

    @property
    def base(self) -> BaseModelRef:
        return BaseModelRef(self.base_name, self.base_path, self.base_revision)


# built only by tasks.train.run.reusable_version
class ReusedAdapter(Ref):
    """The version already trained from this corpus and recipe, so nothing trains twice."""
    model_name: str
    version: str
    aliases: list[str]
    decision: str                  # its release decision ("" when none was made)
    reason: str


# built only by tasks.evaluate.run.evaluate_adapter
class EvaluationResult(Ref):
    """Base vs candidate (vs production) on a corpus version's eval set."""
    model_name: str
    version: str
    production_version: str | None  # the version it was compared with; None: the base only
    eval_digest: str
    examples: int
    summary: dict[str, Any]        # tasks.evaluate.statistics.summarise: means, intervals, slices, directions
    failures: dict[str, int]       # scorer failures (scored as failed), by score
    generated_tokens: int
    seconds: float
    run_id: str                    # the eval run in MLflow


# built only by tasks.release.staging.stage_candidate, from tasks.release.staging.judge_smoke's figures
class StagingResult(Ref):
    """The smoke suite over HTTP against the candidate served at alias `staging`."""
    model_name: str
    version: str
    passed: bool
    reasons: list[str]
    requests: int
    failed: int
    empty: int
    format_share: float | None          # None: not checked (the contract declares no regex_match scorer)
    format_checked: bool
    differ: int
    p95_seconds: float
    p50_seconds: float
    server_log: str
    server_pid: int | None
    skipped: list[str] = []             # checks not run, each with why (no scorer of the owner's defines them)
    parity_checked: int = 0        # held-out conversations whose server-rendered ids were compared with training's
    parity_mismatches: int = 0


# built only by tasks.release.registry.release_adapter
class ReleaseDecision(Ref):
    """What the release step did with a candidate and why."""
    model_name: str
    version: str
    promoted: bool
    reason: str
    previous_production: str | None
    time: str
    checks: list[dict[str, Any]]   # the gate's checks with their figures (tasks.release.gate.Decision.as_dict)
    notes: list[str]
    staging: StagingResult | None


# --- curation: what each stage hands on, and the bundle that becomes a corpus version ---------------

class StageResult(Ref):
    """A curation stage's quarantine file and its counts (every record read is kept or quarantined)."""
    quarantine: str
    input: int
    kept: int
    quarantined: int


# built only by tasks.curate.inputs.ingest_files
class IngestResult(StageResult):
    """Records read from the inputs, and the lines that could not be read."""
    records: str
    files: list[dict[str, Any]]    # per file: path, format, record format, digest, rows read and quarantined, notes
    notes: list[str] = []          # whole-file lines said once (hashed ids, mixed formats, split routing)


# built only by tasks.curate.pii.pii_file
class PiiResult(StageResult):
    """Records with PII redacted or quarantined as the contract's policy says."""
    records: str                   # redacted
    report: str
    redacted: int
    detectors: list[dict[str, Any]]
    contract: str
    contract_version: int


# built only by tasks.label.labeling.label_file
class LabelResult(StageResult):
    """Records with the annotators' settled decisions applied."""
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


# built only by tasks.dedup.stage.finish_dedup, however dedup ran (one process, shards, the CLI)
class DedupResult(Ref):
    """Records kept after exact and near-duplicate removal, and the duplicates with their clusters."""
    kept_records: str
    duplicates: str
    report: str
    signatures: str | None
    input: int
    kept: int
    exact: int
    near: int
    bands_rows: list[int]


# built only by tasks.curate.validate.validate_file
class ValidationResult(StageResult):
    """Records that pass the data contract, and those it quarantines."""
    valid: str                     # the records that pass the contract
    result: str                    # Great Expectations' full result (validation.json)
    data_docs: str
    contract: str
    contract_version: int
    owners: list[str]


# built only by tasks.curate.split.split_file
class SplitResult(Ref):
    """Train, held-out and eval records, and train records quarantined for leaking into the others."""
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


# built by the curate flow; tasks.corpus.versions.publish_version turns it into a version
class CurationStages(Ref):
    """Every curation stage's result: what becomes a corpus version."""
    ingest: IngestResult
    pii: PiiResult
    dedup: DedupResult
    validation: ValidationResult
    split: SplitResult
    eval_ingest: IngestResult
    eval_pii: PiiResult
    label: LabelResult | None = None


# built only by tasks.watch.stage.watch_window
class WatchResult(Ref):
    """One window of recorded production traffic against the corpus the adapter learned from and its release-time
    evaluation: novelty, reference-free scores, feedback, the alerts that tripped."""
    pipeline: str
    model_name: str
    version: str
    alias: str
    corpus_version: int
    corpus_digest: str
    window_start: str
    window_end: str
    conversations: int
    novel: int
    novel_share: float
    baseline_share: float = Field(description="The held-out set's own share below the novelty threshold.")
    scores: list[dict] = Field(description="Per score: production, release, source, higher_is_better, worse_by.")
    feedback: dict[str, float]
    clusters: list[dict] = Field(description="The largest novel clusters: size, share, words, examples.")
    alerts: list[str]
    message: str = Field(description="One line for a notification, e.g. 'm v3: 31% of this window's traffic ...'.")
    label_candidates: int
    folder: str = Field(description="The run folder: report.md, summary.json, candidates.jsonl.")
    run_id: str | None = None
