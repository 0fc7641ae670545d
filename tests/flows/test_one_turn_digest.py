"""A prompt/completion corpus keeps its digest: conversations at ingest change nothing for the one-turn case.

Since decisions are bound to files (issue 24), the approval policy a version is curated under enters its
digest, so a version curated under `approval: auto` can never be the one an owner's pipeline waits on. That
is the one part of the digest that moved: without it, the digest is main's to the bit.

The digest below was computed on main before conversations reached ingest (commit 13a3437), from the
fixed files under tests/data with the default config and the support_tickets contract, through the same
stage functions the curate flow wires (without Prefect).
"""

from pathlib import Path

import pandas as pd

from adapterops.config import Config
from flows.curate import curation_settings
from tasks.corpus.versions import digest_of_parts, records_digest
from tasks.curate import ingest_files, pii_file, split_file, validate_file
from tasks.dedup import dedup_file
from tasks.records import load_contract

DATA = Path(__file__).resolve().parents[1] / "data"
DIGEST_ON_MAIN = "sha256:6fc66f0cfeb2a65cf55b27c6aa64005c9ab05b7777412cf65a030ea1cc2c3f9d"
BOUND_TO_POLICY = "sha256:223212fe4171da943e2f260d9e890cb659f3c7ecc2a90ea4b8c64b72607303aa"


def curated_digest(stage: Path, bind_policy: bool = True) -> str:
    config = Config(sources=[str(DATA / "one_turn_tickets.jsonl")], eval_source=str(DATA / "one_turn_eval.jsonl"))
    contract = load_contract(config.contract)
    eval_ingested = ingest_files([config.eval_source], config.columns, stage / "eval")
    eval_pii = pii_file(eval_ingested.records, contract, stage / "eval")
    ingested = ingest_files(config.sources, config.columns, stage)
    pii = pii_file(ingested.records, contract, stage)
    deduped = dedup_file(pii.records, config.dedup, stage)
    validated = validate_file(deduped.kept_records, contract, stage)
    split = split_file(validated.valid, eval_pii.records, config.dedup, config.split.heldout_fraction,
                       config.split.seed, stage)
    return digest_of_parts(records_digest(pd.read_parquet(split.train)), records_digest(pd.read_parquet(split.heldout)),
                           settings_of(config, bind_policy), validated.contract_version)


def settings_of(config: Config, bind_policy: bool) -> dict:
    settings = curation_settings(config)
    assert settings["approval"] == config.approval
    return settings if bind_policy else {k: v for k, v in settings.items() if k != "approval"}


def test_a_prompt_completion_corpus_keeps_the_digest_it_had_before_conversations(tmp_path):
    assert curated_digest(tmp_path / "a", bind_policy=False) == DIGEST_ON_MAIN
    assert curated_digest(tmp_path / "b") == BOUND_TO_POLICY
