"""Case 9, ingest: a line no parser can take (200,000 levels of nesting, a 5,000-digit number) is a
quarantine row with a reason; the rest of the file is read and the counts add up."""

from __future__ import annotations

import json

import pandas as pd

from adapterops.config import Columns
from tasks.curate.ingest import parse_jsonl
from tasks.curate.inputs import ingest_files

GOOD = json.dumps({"id": "ok", "prompt": "p", "completion": "c"}).encode()
DEEP = b"[" * 200_000 + b"]" * 200_000
DEEP_FIELD = b'{"id": "deep", "prompt": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
HUGE_INT = b'{"id": "n", "prompt": ' + b"9" * 5000 + b"}"


def test_unparseable_lines_are_quarantined_with_a_reason():
    out = parse_jsonl(b"\n".join([GOOD, DEEP, DEEP_FIELD, HUGE_INT, GOOD.replace(b'"ok"', b'"ok2"')]), "f.jsonl", Columns())
    assert [r["id"] for r in out.records] == ["ok", "ok2"]
    reasons = {q["input_line"]: q["reason"] for q in out.quarantine}
    assert reasons[2] == reasons[3] == "malformed_json: nested too deeply to parse"
    assert reasons[4].startswith("unparseable: ValueError")
    assert out.lines == 5 and len(out.quarantine[0]["raw"]) < 2100          # the raw line is kept, cut


def test_a_file_with_a_deeply_nested_line_is_ingested(tmp_path):
    source = tmp_path / "records.jsonl"
    source.write_bytes(GOOD + b"\n" + DEEP + b"\n")
    result = ingest_files([str(source)], Columns(), tmp_path / "stage")
    assert (result.input, result.kept, result.quarantined) == (2, 1, 1)
    assert pd.read_parquet(result.quarantine)["reason"].tolist() == ["malformed_json: nested too deeply to parse"]


# --- a full disk: one line naming the path and the space, nothing half-written, no version ----------

def test_a_stage_that_fills_the_disk_fails_with_one_line_and_leaves_no_partial_file(tmp_path, small_disk):
    import os

    import pytest

    from adapterops.errors import AdapterOpsError

    source = tmp_path / "big.jsonl"        # ~6 MB of incompressible text, the stage on a 3 MB disk
    source.write_text("".join(json.dumps({"id": f"r{i}", "prompt": os.urandom(1500).hex(), "completion": "c"}) + "\n"
                              for i in range(2000)), encoding="utf-8")
    stage = small_disk / "stage"
    with pytest.raises(AdapterOpsError) as caught:
        ingest_files([str(source)], Columns(), stage)
    message = str(caught.value)
    assert "\n" not in message and f"No space left on the disk holding {stage / 'records.parquet'}" in message
    assert "needs about" in message and "MB is free" in message
    assert list(stage.iterdir()) == []                                      # the staging file was removed


def test_a_run_on_a_nearly_full_disk_stops_before_it_starts(small_disk):
    from tests.integrity.conftest import run_cli

    home = small_disk / "home"
    result = run_cli("demo", ADAPTEROPS_HOME=str(home), PREFECT_HOME=str(home / "prefect"),
                     MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow/mlflow.db")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"free on the disk holding the workspace {home}" in lines[0], result.stderr
    assert "needs at least 100 MB" in lines[0] and "Traceback" not in result.stderr
    assert not any((home / "corpus").iterdir())                            # no version, not even a folder


def test_the_dedup_command_on_a_full_disk_prints_one_line_and_leaves_no_partial_file(tmp_path, small_disk):
    import os

    from tests.integrity.conftest import run_cli

    source = tmp_path / "big.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "text": os.urandom(1500).hex()}) + "\n" for i in range(2000)),
                      encoding="utf-8")
    out = small_disk / "out"
    result = run_cli("dedup", str(source), "--out", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on the disk holding" in lines[0] and str(out) in lines[0], result.stderr
    assert not [p for p in out.rglob("*") if p.is_file() and "partial" in p.name]
