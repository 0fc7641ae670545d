"""The curate flow's contract and PII steps: what the corpus version carries, in its folder and in MLflow."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from adapterops.config import parse_config
from adapterops.demo_data import eval_lines

PLANTED = ("dana.k@example.com", "+1 415 555 0132", "4111 1111 1111 1111")
PLANTED_IN_EVAL = ("sam.r@example.org", "5500 0000 0000 0004")


@pytest.fixture(scope="module")
def corpus(prefect_harness, workspace):
    from flows.curate import curate

    return curate(parse_config({"name": "contracted", "approval": "auto", "demo_records": 200}))


def test_the_version_carries_the_gx_result_data_docs_and_pii_report(corpus):
    folder = Path(corpus.path)
    assert (folder / "validation.json").is_file() and (folder / "data_docs" / "index.html").is_file()
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(corpus.run_id, "corpus")}
    assert {"corpus/validation.json", "corpus/data_docs", "corpus/pii.json"} <= artifacts
    assert corpus.contract_version == 1


def test_pii_is_redacted_or_quarantined_per_policy_and_the_counts_add_up(corpus):
    folder = Path(corpus.path)
    kept = pd.concat([pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "heldout")])
    text = " ".join(kept["prompt"].fillna("")) + " ".join(kept["completion"].fillna(""))
    assert not any(value in text for value in PLANTED)
    assert "[EMAIL]" in text and "[PHONE]" in text                        # redacted in place: email, phone
    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    assert list(quarantine.loc[quarantine["stage"] == "pii", "reason"]) == ["pii: card"]
    assert {"ingest", "pii", "contract"} <= set(quarantine["stage"])
    assert not any(value in " ".join(quarantine["raw"]) for value in PLANTED)
    counts = corpus.counts
    assert counts["input"] == counts["kept"] + counts["duplicates"] + counts["quarantined"] == \
        len(kept) + counts["duplicates"] + len(quarantine)


def test_the_eval_set_goes_through_ingest_and_the_pii_policy_and_is_accounted_for(corpus):
    folder = Path(corpus.path)
    evaluation = pd.read_parquet(folder / "eval.parquet")
    text = " ".join(evaluation["prompt"]) + " ".join(evaluation["completion"])
    assert not any(value in text for value in PLANTED_IN_EVAL) and "[EMAIL]" in text
    quarantine = pd.read_parquet(folder / "eval_quarantine.parquet")
    assert sorted(zip(quarantine["stage"], quarantine["reason"].str.split(":").str[0])) == [
        ("ingest", "malformed_json"), ("ingest", "missing_content"), ("pii", "pii")]
    assert not any(value in " ".join(quarantine["raw"]) for value in PLANTED_IN_EVAL)
    counts = corpus.counts
    planted = eval_lines(40, 2026)        # the demo eval file: 40 records and one malformed line
    assert counts["eval_input"] == len(planted) == len(evaluation) + len(quarantine) == 41
    assert (counts["eval"], counts["eval_quarantined"]) == (len(evaluation), len(quarantine)) == (38, 3)
    assert (folder / "eval_pii.json").is_file()


def test_the_contract_result_and_the_review_carry_the_quarantine_by_reason(corpus):
    import json

    from tasks.approve import version_review
    from tasks.corpus import get_version

    folder = Path(corpus.path)
    validation = json.loads((folder / "validation.json").read_text(encoding="utf-8"))
    groups = {(g["stage"], g["reason"]): g for g in validation["quarantine_by_reason"]}
    assert ("pii", "pii: card") in groups and groups[("pii", "pii: card")]["example"].startswith("id ")
    assert any(stage == "ingest" for stage, _ in groups) and any(stage == "contract" for stage, _ in groups)
    review = version_review("contracted", get_version("contracted", corpus.version), "http://mlflow", "http://prefect", 2)
    assert "Quarantined by reason:" in review and "| rows | stage | reason | example | field | expected |" in review
    assert "pii\\: card" in review
