"""An unchanged curation reuses its version without curating; any changed input, label, contract or setting curates."""

import json
import shutil

import pandas as pd
import pytest
from prefect import task

from adapterops.config import parse_config

SMALL = {"name": "cache", "demo_records": 150}


@pytest.fixture(scope="module")
def inputs(prefect_harness, tmp_path_factory):
    """Copies of the demo files (tests edit them) and the version they curate to."""
    from adapterops.sources import demo_files
    from flows.curate import curate

    folder = tmp_path_factory.mktemp("cache-inputs")
    train, evaluation = demo_files(parse_config(SMALL))
    shutil.copy(train, folder / "train.jsonl")
    shutil.copy(evaluation, folder / "eval.jsonl")
    settings = SMALL | {"sources": [str(folder / "train.jsonl")], "eval_source": str(folder / "eval.jsonl")}
    return folder, settings, curate(parse_config(settings))


@pytest.fixture()
def ingest_calls(monkeypatch):
    """Counts the curations that got as far as ingest."""
    import flows.curate as curate_module

    calls = []
    real = curate_module.ingest_task

    @task(name="ingest")
    def counting(*args, **kwargs):
        calls.append(args[0])
        return real.fn(*args, **kwargs)

    monkeypatch.setattr(curate_module, "ingest_task", counting)
    return calls


def test_an_unchanged_curation_reuses_the_version_without_ingesting(inputs, ingest_calls):
    from flows.curate import curate

    folder, settings, first = inputs
    again = curate(parse_config(settings))
    assert ingest_calls == []
    assert (again.version, again.digest, again.new) == (first.version, first.digest, False)
    from tasks.corpus.versions import corpus_ref

    assert again == corpus_ref(first.pipeline, first.digest)     # the reference a full curation hands on


def test_a_changed_input_file_curates_a_new_version(inputs, ingest_calls, tmp_path):
    from flows.curate import curate

    folder, settings, first = inputs
    kept = pd.read_parquet(f"{first.path}/train.parquet")["id"].iloc[0]
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").split("\n")
    index = next(i for i, line in enumerate(lines) if f'"id": "{kept}"' in line)
    record = json.loads(lines[index])
    record["messages"][-1]["content"] += " Thanks for waiting."          # the final assistant turn
    lines[index] = json.dumps(record)
    (tmp_path / "train.jsonl").write_text("\n".join(lines), encoding="utf-8")
    changed = curate(parse_config(settings | {"sources": [str(tmp_path / "train.jsonl")]}))
    assert ingest_calls and changed.new and changed.digest != first.digest


def test_a_changed_setting_curates_a_new_version(inputs, ingest_calls):
    from flows.curate import curate

    _, settings, first = inputs
    changed = curate(parse_config(settings | {"split": {"seed": 8}}))
    assert ingest_calls and changed.new and changed.digest != first.digest


def test_a_changed_contract_curates_a_new_version(inputs, ingest_calls, tmp_path, monkeypatch):
    from flows.curate import curate
    from tasks.records.contract import CONTRACTS_DIR

    _, settings, first = inputs
    text = (CONTRACTS_DIR / "support_tickets.yaml").read_text()
    (tmp_path / "support_tickets.yaml").write_text(text.replace("\nversion: 1\n", "\nversion: 2\n"))
    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(tmp_path))
    changed = curate(parse_config(settings))
    assert ingest_calls and changed.new and changed.contract_version == 2


def test_a_changed_label_file_curates_a_new_version(inputs, ingest_calls, tmp_path):
    from flows.curate import curate
    from tasks.label.labeling import export_tasks

    _, settings, first = inputs
    records = pd.read_parquet(f"{first.path}/train.parquet").head(2)
    tasks = export_tasks(records, first, "jsonl")
    tasks[0] |= {"verdict": "reject", "note": "not our product", "annotator": "lee@example.com"}
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    labeled = curate(parse_config(settings | {"labels": [str(labels)]}))
    assert ingest_calls and labeled.new
    ingest_calls.clear()
    tasks[1] |= {"verdict": "reject", "note": "duplicate ticket", "annotator": "lee@example.com"}
    labels.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    relabeled = curate(parse_config(settings | {"labels": [str(labels)]}))
    assert ingest_calls and relabeled.new and relabeled.digest != labeled.digest


def test_a_version_whose_files_no_longer_rehash_is_curated_again(prefect_harness, ingest_calls, tmp_path):
    from flows.curate import curate

    config = parse_config(SMALL | {"name": "cache-rehash"})
    first = curate(config)
    train = pd.read_parquet(f"{first.path}/train.parquet")
    train.iloc[1:].to_parquet(f"{first.path}/train.parquet")    # a record lost after the version was written
    ingest_calls.clear()
    curate(config)
    assert ingest_calls, "a version whose files changed was reused without curating"


def test_an_entry_holds_only_against_the_approved_version_it_was_curated_with():
    from tasks.curate.cache import entry_applies

    entry = {"digest": "sha256:b", "anchored_on": "sha256:a"}
    assert entry_applies(entry, "sha256:a") and entry_applies(entry, "sha256:b")
    assert not entry_applies(entry, "sha256:c") and not entry_applies(entry, None)
    assert entry_applies({"digest": "sha256:b", "anchored_on": None}, None)
    assert not entry_applies(None, None)
