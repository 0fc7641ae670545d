"""curate: ingest → PII → dedup → contract → split → corpus version."""

from pathlib import Path

from prefect import flow, task
from prefect.runtime import flow_run

from adapterops.config import Config, InputsConfig
from adapterops.refs import CorpusRef, CurationStages, DedupResult, PiiResult
from adapterops.sources import resolve_source
from adapterops.workspace import resolve_workspace
from flows.dedup import publish_dedup_report, run_dedup
from flows.reporting import counts_rows, publish_markdown, publish_table
from tasks.corpus import last_approved_signatures, publish_version
from tasks.curate import (
    approved_digest,
    fingerprint_of,
    ingest_files,
    pii_file,
    remember,
    reusable_corpus,
    route_splits,
    split_file,
    validate_file,
)
from tasks.dedup import dedup_file
from tasks.label import label_file
from tasks.records import contract_path, load_contract

contract_task = task(name="contract-load")(load_contract)   # once per curation; the stages take it
ingest_task = task(name="ingest")(ingest_files)
pii_task = task(name="pii")(pii_file)
label_task = task(name="labels")(label_file)
dedup_task = task(name="dedup")(dedup_file)
previous_signatures_task = task(name="dedup-previous-signatures")(last_approved_signatures)
validate_task = task(name="validate")(validate_file)
split_task = task(name="split")(split_file)
version_task = task(name="corpus-version")(publish_version)


@task(name="curation-fingerprint")
def fingerprint_task(pipeline: str, paths: dict, contract: str, settings: dict) -> dict:
    """Hash what decides the digest (files, contract, settings, code); reuse the version it gave last time."""
    fingerprint = fingerprint_of(paths["sources"], paths["eval"], paths["labels"], contract, settings)
    anchored_on = approved_digest(pipeline)
    corpus, why = reusable_corpus(pipeline, fingerprint, anchored_on)
    verdict = f"reused corpus v{corpus.version}: ingest, PII, dedup, contract and split skipped" if corpus \
        else "curating"
    publish_markdown("curation-fingerprint", f"Curation fingerprint: {verdict}", f"`{fingerprint}`: {why}.")
    return {"fingerprint": fingerprint, "anchored_on": anchored_on, "corpus": corpus}


@task(name="remember-fingerprint")
def remember_task(pipeline: str, cached: dict, digest: str, paths: dict, contract: str, settings: dict) -> bool:
    """Remember fingerprint → digest, unless an input changed while curating (then it would not describe the bytes read)."""
    if fingerprint_of(paths["sources"], paths["eval"], paths["labels"], contract, settings) != cached["fingerprint"]:
        return False
    remember(pipeline, cached["fingerprint"], digest, cached["anchored_on"])
    return True


def curation_settings(config: Config) -> dict:
    """The parts of the config that change the corpus bytes: they enter its digest."""
    settings = {"dedup": config.dedup.settings(), "split": config.split.model_dump(),
                "columns": config.columns.model_dump(), "approval": config.approval}
    if config.inputs != InputsConfig():   # left out at its default: prompt/completion corpora keep their digests
        settings["inputs"] = config.inputs.model_dump()
    if config.labels:   # the policy decides which decisions apply; without labels it changes nothing
        settings["labeling"] = {"policy": config.labeling.policy, "reviewer": config.labeling.reviewer}
    return settings


@flow(name="curate")
def curate(config: Config) -> CorpusRef:
    """Turn the configured sources into a content-addressed corpus version awaiting approval."""
    stage = resolve_workspace().runs_dir / f"curate-{flow_run.get_id() or 'local'}"
    sources = [str(p) for name in config.sources for p in resolve_source(name, config)]
    # A DatasetDict source's splits go where inputs.splits maps them (train to the corpus, test/validation to eval);
    # its eval splits replace eval_source when that is left at the demo default.
    train_inputs, split_eval, routed = route_splits(sources, config.inputs)
    if split_eval and config.eval_source == Config.model_fields["eval_source"].default:
        routed.append("evaluation set: the DatasetDict's eval splits (eval_source is left at its default)")
        eval_paths = []
    else:
        eval_paths = [str(p) for p in resolve_source(config.eval_source, config)]
    for note in routed:                # said once, before any row is read
        print(f"inputs: {note}", flush=True)
    label_paths = [str(p) for name in config.labels for p in resolve_source(name, config)]
    paths = {"sources": sources, "eval": eval_paths, "labels": label_paths}
    cached = fingerprint_task(config.name, paths, config.contract, curation_settings(config))
    if cached["corpus"] is not None:
        corpus = cached["corpus"]
        publish_markdown("corpus-version", f"Corpus {config.name} v{corpus.version}",
                         f"**Digest** `{corpus.digest}` (unchanged: reused, not curated again)\n\n" +
                         "\n".join(f"- {k}: {v}" for k, v in corpus.counts.items()))
        return corpus
    contract = contract_task(config.contract)
    eval_inputs = split_eval + eval_paths
    if routed:
        publish_markdown("inputs", "Inputs: DatasetDict splits", "\n".join(f"- {note}" for note in routed))
    # the eval set is real workload too: same readers, same PII policy
    eval_ingested = ingest_task.with_options(name="ingest-eval")(eval_inputs, config.columns, stage / "eval",
                                                                 config.inputs)
    eval_pii = pii_task.with_options(name="pii-eval")(eval_ingested.records, contract, stage / "eval")
    publish_pii("eval-pii", eval_pii)
    ingested = ingest_task(train_inputs, config.columns, stage, config.inputs)
    publish_table("ingest", "Ingest: records per file", ingested.files)
    pii = pii_task(ingested.records, contract, stage)
    publish_pii("pii", pii)
    labeled = None
    if config.labels:   # after PII: decisions were made on the redacted records a version holds
        labeled = label_task(pii.records, label_paths, stage, contract, config.labeling.policy,
                             config.labeling.reviewer)
        publish_table("labels", "Labeling decisions", [{"outcome": k, "decisions": v} for k, v in labeled.outcomes.items()])
    deduped = dedup(labeled.records if labeled else pii.records, config, stage)
    publish_table("dedup", "Duplicates removed", counts_rows(deduped.model_dump(include={"input", "kept", "exact", "near"})))
    try:
        earlier = [ingested.quarantine, pii.quarantine] + ([labeled.quarantine] if labeled else [])
        validated = validate_task(deduped.kept_records, contract, stage, earlier)
    finally:   # the owner sees the contract's summary when it rejects the version too
        publish_contract_summary(config.contract, stage)
    publish_table("contract", f"Contract {validated.contract} v{validated.contract_version}",
                  counts_rows(validated.model_dump(include={"input", "kept", "quarantined"})))
    split = split_task(validated.valid, eval_pii.records, config.dedup, config.split.heldout_fraction,
                       config.split.seed, stage)
    stages = CurationStages(ingest=ingested, pii=pii, dedup=deduped, validation=validated, split=split,
                            eval_ingest=eval_ingested, eval_pii=eval_pii, label=labeled)
    corpus = version_task(config.name, stages, curation_settings(config), stage, contract_path(config.contract))
    if corpus.new and flow_run.get_id():   # the review page links to the run that curated the version
        import mlflow

        mlflow.MlflowClient().set_tag(corpus.run_id, "prefect.curate_flow_run_id", flow_run.get_id())
    remember_task(config.name, cached, corpus.digest, paths, config.contract, curation_settings(config))
    state = "new version" if corpus.new else "unchanged: same digest as an existing version"
    publish_markdown("corpus-version", f"Corpus {config.name} v{corpus.version}",
                     f"**Digest** `{corpus.digest}` ({state})\n\n" +
                     "\n".join(f"- {k}: {v}" for k, v in corpus.counts.items()))
    return corpus


def publish_pii(key: str, pii: PiiResult) -> None:
    publish_table(key, f"PII found under contract {pii.contract} v{pii.contract_version}", pii.detectors)


def publish_contract_summary(contract: str, stage: Path) -> None:
    if (summary := stage / "validation.md").is_file():
        publish_markdown("contract-summary", f"Contract {contract}", summary.read_text(encoding="utf-8"))


def dedup(records: str, config: Config, stage) -> DedupResult:
    """Deduplicate against the last approved version's stored signatures: in one task, or sharded
    across parallel tasks (threads, or Dask) when dedup.workers > 1 or a Dask address is set."""
    previous = previous_signatures_task(config.name)
    settings = config.dedup
    if settings.workers > 1 or settings.dask_address:
        return run_dedup(records, settings, str(stage), settings.dask_address, settings.workers,
                         previous_signatures=previous)
    summary = dedup_task(records, settings, stage, previous_signatures=previous)
    publish_dedup_report(summary)
    return summary
