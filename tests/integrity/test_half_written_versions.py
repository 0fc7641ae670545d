"""A curation killed (SIGKILL) while publishing leaves no listed, reusable or approvable
version; the next curation of the same content replaces it under a new number."""

import signal

import mlflow
import pytest

from adapterops.errors import AdapterOpsError
from tests.integrity.procs_approval import finish, publish, python

CHILD = """
from pathlib import Path
from tests.integrity.procs_approval import publish
publish({pipeline!r}, Path({folder!r}), "crash")
print("NOT KILLED")
"""


@pytest.mark.parametrize("point", ["version-folder", "run-tags"])
def test_a_kill_while_publishing_leaves_nothing_listed_and_is_replaced(point, tmp_path, monkeypatch):
    from tasks.approve.approval import record_decision
    from tasks.corpus.versions import find_version, list_versions, verified_digest
    from tasks.records.contract import CONTRACTS_DIR

    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(CONTRACTS_DIR))
    pipeline = f"crash-{point}"
    publish(pipeline, tmp_path, "earlier")                                       # v1, complete
    code, output = finish(python(CHILD.format(pipeline=pipeline, folder=str(tmp_path)), ADAPTEROPS_CRASH_AT=point))
    assert code == -signal.SIGKILL, output[-2000:]
    listed = list_versions(pipeline)
    assert [r.data.tags["corpus.version"] for r in listed] == ["1"]               # nothing half-written is listed
    crashed = publish_digest(tmp_path)
    assert find_version(pipeline, digest=crashed) is None and find_version(pipeline, version=2) is None
    with pytest.raises(AdapterOpsError, match="No corpus version"):
        record_decision(pipeline, crashed, "policy:auto", "approved", approval="auto", announce=False)

    again = publish(pipeline, tmp_path, "crash")                                 # the next run repairs
    assert again.new and again.version == 3 and again.digest == crashed  # number 2 is never reused
    assert verified_digest(find_version(pipeline, digest=crashed)) == crashed
    assert [r.data.tags["corpus.version"] for r in list_versions(pipeline)] == ["1", "3"]
    experiment = mlflow.get_experiment_by_name(f"{pipeline}/corpus").experiment_id
    left = [r for r in mlflow.search_runs([experiment], output_format="list") if r.data.tags.get("corpus.version") == "2"]
    if point == "run-tags":                     # the killed run is closed and marked, never listed again
        assert [(r.info.status, r.data.tags["corpus.status"]) for r in left] == [("FAILED", "incomplete")]
    else:                                       # killed before its run: no run, its folder set aside
        assert left == []
    from adapterops.workspace import resolve_workspace
    folders = sorted(p.name for p in (resolve_workspace().corpus_dir / pipeline).iterdir() if p.is_dir())
    assert "v0002" not in folders and "v0001" in folders and "v0003" in folders


def publish_digest(folder) -> str:
    """The digest of the 'crash' content, as publish_version computes it."""
    import pandas as pd

    from tasks.corpus.versions import digest_of_parts, records_digest, version_settings
    from tasks.records.contract import contract_path
    from tests.integrity.procs_approval import SETTINGS

    stage = folder / "crash"
    settings = version_settings(SETTINGS | {"approval": "owner"}, contract_path("support_tickets"))
    return digest_of_parts(records_digest(pd.read_parquet(stage / "train.parquet")),
                           records_digest(pd.read_parquet(stage / "heldout.parquet")), settings, 1)
