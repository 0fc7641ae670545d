"""A Hugging Face DatasetDict saved with save_to_disk, without ids: curated with hashed ids, its train split as
the corpus and its test split as the evaluation set, with the mapping said in the output."""

from pathlib import Path

import pandas as pd
import pytest

from adapterops.config import parse_config
from adapterops.demo_data import generate_conversations


def without_ids(records: list[dict]) -> list[dict]:
    return [{"source": r["source"], "timestamp": r["timestamp"], "messages": r["messages"]} for r in records]


@pytest.fixture(scope="module")
def curated(prefect_harness, workspace, tmp_path_factory):
    from datasets import Dataset, DatasetDict

    from flows.curate import curate

    folder = tmp_path_factory.mktemp("hf") / "helpdesk"
    # Only messages and metadata: tools (absent in most rows) would be a column of nulls in Arrow.
    DatasetDict({"train": Dataset.from_list(without_ids(generate_conversations(160, 41))),
                 "test": Dataset.from_list(without_ids(generate_conversations(30, 42)))}).save_to_disk(str(folder))
    return curate(parse_config({"name": "hf-dict", "approval": "auto", "sources": [str(folder)]}))


def test_the_train_split_is_the_corpus_with_hashed_ids_and_the_test_split_the_evaluation_set(curated):
    folder = Path(curated.path)
    train = pd.concat([pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "heldout")])
    evaluation = pd.read_parquet(folder / "eval.parquet")
    assert train["id"].str.match(r"^h[0-9a-f]{16}").all() and evaluation["id"].str.match(r"^h[0-9a-f]{16}").all()
    assert curated.counts["eval_input"] == 30 and curated.counts["input"] == 160
    assert evaluation["messages"].notna().all()
    assert not set(evaluation["id"]) & set(train["id"])


def test_the_manifest_names_the_split_read_and_says_its_ids_are_content_hashes(curated):
    import json

    sources = json.loads((Path(curated.path) / "manifest.json").read_text())["sources"]
    assert [Path(s["path"]).name for s in sources] == ["helpdesk#train"]
    assert "content hashes" in sources[0]["notes"] and sources[0]["records_format"] == "OpenAI chat (messages)"
