"""An approve and a reject raced on one version (real CLI processes): exactly one wins,
the other says who won in one line, and the log holds one entry with a unique sequence number."""

import json
import re
from pathlib import Path

import mlflow
import pytest

from tests.integrity.procs_approval import cli, finish, keyed_contract, publish

PIPELINES = ("race-a",)


def logged_traceback(line: str) -> str:
    """The loser's line and the end of the traceback it names, so a failure here says what really failed."""
    named = re.search(r"traceback in (\S+)\)", line)
    path = Path(named.group(1)) if named else None
    return line + ("\n" + path.read_text()[-3000:] if path and path.is_file() else "")


@pytest.fixture()
def contract(tmp_path, monkeypatch):
    path = keyed_contract(tmp_path / "contracts", {"dana.k": {}, "sam.p": {}, "policy:auto": {}})
    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(path.parent))
    return path


def test_concurrent_approve_and_reject_one_wins(contract, tmp_path, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    from tasks.approve.approval import current_decision, decision_log
    from tasks.corpus.versions import find_version

    corpora = {name: publish(name, tmp_path / "stages", name) for name in PIPELINES}
    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}       # the approval event goes to the test server
    children = {(name, decision): cli("corpus", decision, "1", "--name", name, "--as", who, "--yes", **env)
                for name in PIPELINES for decision, who in (("approve", "dana.k"), ("reject", "sam.p"))}
    results = {key: finish(child) for key, child in children.items()}

    for name in PIPELINES:
        outcome = {decision: results[(name, decision)] for decision in ("approve", "reject")}
        winners = [d for d, (code, _) in outcome.items() if code == 0]
        assert len(winners) == 1, outcome
        loser_code, loser_output = outcome["reject" if winners[0] == "approve" else "approve"]
        won = {"approve": ("approved", "dana.k"), "reject": ("rejected", "sam.p")}[winners[0]]
        error_lines = [line for line in loser_output.splitlines() if line.startswith("error:")]
        assert loser_code == 1 and len(error_lines) == 1 and "Traceback" not in loser_output, loser_output
        assert f"already {won[0]} ({won[1]} at" in error_lines[0], logged_traceback(error_lines[0])
        run = find_version(name, digest=corpora[name].digest)
        statement = current_decision(run)
        assert (statement["decision"], statement["approver"]) == won
        log = decision_log(run)
        assert [(e["seq"], e["decision"], e["approver"]) for e in log] == [(1, *won)]
        tags = run.data.tags
        assert tags["corpus.status"] == won[0] and "approval.log.2" not in tags and won[1] in tags["approval.log.1"]
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "approvals")}
        assert "approvals/decision.dsse.json" in artifacts


def test_the_event_is_emitted_after_the_decision_is_on_disk(contract, tmp_path, monkeypatch):
    from tasks.approve.approval import DECISION_FILE, decision_log, record_decision
    from tasks.corpus.versions import find_version

    corpus = publish("event-order", tmp_path / "stages", "event-order")
    seen = []

    def emitted(pipeline, version, digest, approver):
        run = find_version(pipeline, digest=digest)
        on_disk = json.loads((Path(run.data.tags["corpus.path"]) / DECISION_FILE).read_text())
        seen.append((bool(on_disk["signatures"]), [e["decision"] for e in decision_log(run)]))

    monkeypatch.setattr("tasks.approve.approval._emit_approved", emitted)
    record_decision("event-order", corpus.digest, "dana.k", "approved")
    assert seen == [(True, ["approved"])]
