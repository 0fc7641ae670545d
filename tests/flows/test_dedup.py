"""dedup inside flows: the sharded flow on threads and on Dask, and curate deduplicating against the approved version."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapterops.config import DedupConfig, parse_config
from tasks.dedup.clusters import dedup_records

BASE = ("the customer reports that the invoice for the annual plan lists twelve seats although the "
        "team only has nine active users and asks for a corrected invoice before the end of the month")


def frame(texts):
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "prompt": texts,
                         "completion": ["ok"] * len(texts), "timestamp": ["2026-01-01T00:00:00"] * len(texts)})


def test_sharded_flow_on_a_two_worker_dask_cluster_matches_in_process(prefect_harness, tmp_path):
    from flows.dedup import run_dedup

    rng = np.random.default_rng(11)
    words = BASE.split()
    texts = [" ".join(rng.choice(words, 35)) for _ in range(40)] + [BASE, BASE + " please", BASE.lower()]
    records = frame(texts)
    records.to_parquet(tmp_path / "records.parquet")
    expected = dedup_records(records, DedupConfig())
    summary = run_dedup(str(tmp_path / "records.parquet"), DedupConfig(), str(tmp_path / "dask"), dask_address="local",
                        workers=2, shard_rows=15)
    pd.testing.assert_frame_equal(pd.read_parquet(summary.duplicates), expected, check_dtype=False)
    threads = run_dedup(str(tmp_path / "records.parquet"), DedupConfig(), str(tmp_path / "threads"), shard_rows=15)
    pd.testing.assert_frame_equal(pd.read_parquet(threads.duplicates), expected, check_dtype=False)
    kept = pd.read_parquet(threads.kept_records)
    assert kept["id"].tolist() == expected.loc[expected["kept"], "id"].tolist()


def _parsed_id(line: str):
    try:
        return json.loads(line).get("id")
    except (ValueError, AttributeError):   # the demo's deliberately malformed lines
        return None


def _with_last_user(messages: str, added: str) -> str:
    """A stored conversation (messages JSON) with text added to its last user message."""
    parsed = json.loads(messages)
    last = max(i for i, m in enumerate(parsed) if m["role"] == "user")
    parsed[last]["content"] += added
    return json.dumps(parsed)


@pytest.fixture(scope="module")
def two_versions(prefect_harness, workspace, tmp_path_factory):
    """v1 approved; v2 drops five of v1's kept records and brings them back under new ids (three verbatim, two edited)."""
    from adapterops.sources import demo_files
    from flows.approve import approve
    from flows.curate import curate

    folder = tmp_path_factory.mktemp("incremental")
    base = parse_config({"name": "incremental", "approval": "auto", "demo_records": 200})
    lines = demo_files(base)[0].read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "v1.jsonl").write_text("".join(lines), encoding="utf-8")
    first = curate(base.model_copy(update={"sources": [str(folder / "v1.jsonl")]}))
    approve(base, first)
    train = pd.read_parquet(Path(first.path) / "train.parquet").sort_values("id")
    dropped = train[train["prompt"].str.split().str.len() >= 25].head(5)
    returning = dropped.assign(id=[f"N{k}" for k in range(5)])
    returning.loc[returning.index[3:], "messages"] = [_with_last_user(m, " thanks again")
                                                     for m in returning.loc[returning.index[3:], "messages"]]
    kept_lines = [line for line in lines if _parsed_id(line) not in set(dropped["id"])]
    new_lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in returning.to_dict("records")]
    (folder / "v2.jsonl").write_text("".join(kept_lines + new_lines), encoding="utf-8")
    config = base.model_copy(update={"sources": [str(folder / "v2.jsonl")]})
    return first, curate(config), config, dropped


def test_curate_removes_new_duplicates_of_the_approved_version(two_versions):
    first, second, _, dropped = two_versions
    assert second.new and second.version == first.version + 1
    table = pd.read_parquet(Path(second.path) / "duplicates.parquet").set_index("id")
    returning = table.loc[[f"N{k}" for k in range(5)]]
    assert not returning["kept"].any()
    assert returning["duplicate_of"].tolist() == dropped["id"].tolist()
    assert returning["kind"].tolist() == ["exact"] * 3 + ["near"] * 2
    assert not table.index.isin(dropped["id"]).any()          # anchors get no row of their own
    counts = second.counts
    assert counts["input"] == counts["kept"] + counts["duplicates"] + counts["quarantined"]


def test_sharded_curate_gives_the_same_version(two_versions):
    from flows.curate import curate

    _, second, config, _ = two_versions
    sharded = curate(config.model_copy(update={"dedup": config.dedup.model_copy(update={"workers": 2})}))
    assert sharded.digest == second.digest and not sharded.new
