import pandas as pd
import pytest

from adapterops.errors import AdapterOpsError
from tasks.records.batches import column_names, iter_frames, write_rows_with_ids

ROWS = pd.DataFrame({"id": [f"r{k}" for k in range(10)], "text": [f"text {k}" for k in range(10)],
                     "n": list(range(10))})


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_batches_cover_every_row_in_order_and_kept_rows_keep_their_columns(tmp_path, suffix):
    path = tmp_path / f"in{suffix}"
    {".parquet": lambda: ROWS.to_parquet(path, row_group_size=4), ".csv": lambda: ROWS.to_csv(path, index=False),
     ".jsonl": lambda: ROWS.to_json(path, orient="records", lines=True)}[suffix]()
    assert column_names(path) == ["id", "text", "n"]
    batches = list(iter_frames(path, columns=["id", "text"], batch_rows=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1] and list(batches[0].columns) == ["id", "text"]
    assert pd.concat(batches)["id"].tolist() == ROWS["id"].tolist()
    assert write_rows_with_ids(path, tmp_path / "kept.parquet", "id", ["r1", "r8", "r5"], batch_rows=3) == 3
    kept = pd.read_parquet(tmp_path / "kept.parquet")
    assert kept["id"].tolist() == ["r1", "r5", "r8"] and list(kept.columns) == ["id", "text", "n"]


def test_unknown_format_missing_file_and_malformed_file(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(AdapterOpsError, match="unknown format"):
        column_names(tmp_path / "in.txt")
    with pytest.raises(AdapterOpsError, match="does not exist"):
        list(iter_frames(tmp_path / "none.parquet"))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(AdapterOpsError, match="could not be read as parquet"):
        column_names(tmp_path / "bad.parquet")


def test_jsonl_is_read_in_blocks_with_types_unified_and_a_bad_line_named(tmp_path):
    from tasks.records.batches import concat_blocks, jsonl_blocks, take_rows, write_rows

    path = tmp_path / "in.jsonl"
    lines = [f'{{"id": {k}, "text": "text {k}"}}' for k in range(5)] + ['{"id": "x5", "text": null, "extra": [1]}', '']
    path.write_text("\n".join(lines) + "\n")
    blocks = list(jsonl_blocks(path, block_bytes=40))
    assert len(blocks) > 2
    table = concat_blocks(blocks)
    assert table["id"].to_pylist() == ["0", "1", "2", "3", "4", "x5"]     # numbers in one block, text in another
    assert table["text"].to_pylist()[-2:] == ["text 4", None] and table["extra"].to_pylist()[0] is None
    assert column_names(path) == ["id", "text", "extra"]
    assert take_rows(path, [1, 5], ["id"])["id"].to_pylist() == ["1", "x5"]
    assert write_rows(path, tmp_path / "kept.parquet", [0, 4]) == 2
    assert pd.read_parquet(tmp_path / "kept.parquet")["id"].tolist() == ["0", "4"]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"id": 1, "text": "a"}\n{"id": "b", "text": {"nested": 1}}\n')
    assert concat_blocks(list(jsonl_blocks(mixed)))["id"].to_pylist() == ["1", "b"]   # parsed line by line
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "ok"}\n\n{"id": "b", "text": "unterminated\n{"id": "c"}\n')
    with pytest.raises(AdapterOpsError, match=r"bad.jsonl, line 3: not valid JSON"):
        column_names(bad)
    (tmp_path / "list.jsonl").write_text('{"id": "a"}\n[1, 2]\n')
    with pytest.raises(AdapterOpsError, match=r"line 2: a JSON list, not an object"):
        list(jsonl_blocks(tmp_path / "list.jsonl", block_bytes=8))


def test_rows_are_written_by_position_from_parquet_batches(tmp_path):
    from tasks.records.batches import write_rows

    ROWS.to_parquet(tmp_path / "in.parquet", row_group_size=3)
    assert write_rows(tmp_path / "in.parquet", tmp_path / "kept.parquet", [0, 2, 3, 9], batch_rows=3) == 4
    kept = pd.read_parquet(tmp_path / "kept.parquet")
    assert kept["id"].tolist() == ["r0", "r2", "r3", "r9"] and kept["n"].tolist() == [0, 2, 3, 9]
    assert write_rows(tmp_path / "in.parquet", tmp_path / "none.parquet", []) == 0
    assert list(pd.read_parquet(tmp_path / "none.parquet").columns) == ["id", "text", "n"]


def test_tsv_and_ndjson_are_read_like_csv_and_jsonl(tmp_path):
    (tmp_path / "in.tsv").write_text("id\ttext\nr1\ta, b\nr2\tc\n", encoding="utf-8")
    (tmp_path / "in.ndjson").write_text('{"id": "r1", "text": "a, b"}\n{"id": "r2", "text": "c"}\n', encoding="utf-8")
    for name in ("in.tsv", "in.ndjson"):
        assert column_names(tmp_path / name) == ["id", "text"]
        frames = list(iter_frames(tmp_path / name, batch_rows=1))
        assert [f["text"].tolist() for f in frames] == [["a, b"], ["c"]]


def test_ingest_streams_parquet_in_batches_in_file_order(tmp_path, monkeypatch):
    import tasks.curate.inputs
    from adapterops.config import Columns

    rows = [{"id": f"r{k}", "source": "s", "timestamp": "t", "prompt": f"p{k}", "completion": "c"} for k in range(7)]
    pd.DataFrame(rows).to_parquet(tmp_path / "in.parquet", row_group_size=2)
    monkeypatch.setattr(tasks.curate.inputs, "BATCH_ROWS", 3)
    out = tasks.curate.inputs.ingest_files([str(tmp_path / "in.parquet")], Columns(), tmp_path / "stage")
    assert pd.read_parquet(out.records)["id"].tolist() == [f"r{k}" for k in range(7)]
