import pandas as pd
import pytest

from adapterops.errors import AdapterOpsError
from tasks.record_batches import column_names, iter_frames, write_rows_with_ids

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
