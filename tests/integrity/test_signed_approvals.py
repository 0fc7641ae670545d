"""Decisions are signed statements; tags, copies, edits and non-owners approve nothing."""

import base64
import json
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from adapterops.errors import AdapterOpsError
from cli.main import app
from tests.integrity.procs_approval import keyed_contract, publish


@pytest.fixture()
def contract(tmp_path, monkeypatch):
    """dana.k (key, form allowed), sam.p (key, no form), lee.r (listed without a key) and policy:auto."""
    path = keyed_contract(tmp_path / "contracts", {"dana.k": {"form": True}, "sam.p": {}, "lee.r": {"public_key": None},
                                                   "policy:auto": {}})
    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(path.parent))
    monkeypatch.setattr("tasks.approve.approval._emit_approved", lambda *args: None)
    return path


def pending(name, tmp_path, tag="a", approval="owner"):
    return publish(name, tmp_path / "stages", tag, approval)


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_tags_alone_never_approve(contract, tmp_path):
    from adapterops.config import parse_config
    from adapterops.refs import BaseModelRef
    from tasks.approve.approval import require_approved
    from tasks.corpus.versions import corpus_ref
    from tasks.train.run import train_adapter

    corpus = pending("tags", tmp_path)
    client = mlflow.MlflowClient()
    for key, value in {"corpus.status": "approved", "approval.status": "approved", "approval.digest": corpus.digest,
                       "approval.approver": "dana.k"}.items():
        client.set_tag(corpus.run_id, key, value)           # what anyone can do in the MLflow UI
    with pytest.raises(AdapterOpsError) as refused:
        require_approved("tags", corpus.digest)
    assert "version 1 is pending" in one_line(refused) and "tags do not approve" in one_line(refused)
    config = parse_config({"name": "tags", "approval": "owner"})
    with pytest.raises(AdapterOpsError, match="tags do not approve"):
        train_adapter(config.recipe, corpus_ref("tags", corpus.digest), BaseModelRef("never-loaded", "-", "-"),
                      tmp_path / "run", model_name=config.release.model_name, approval=config.approval)
    assert mlflow.get_experiment_by_name("tags/adapters") is None     # nothing was trained or logged


def test_an_owner_signed_approval_passes_and_an_edited_one_does_not(contract, tmp_path):
    from tasks.approve.approval import DECISION_FILE, record_decision, require_approved

    corpus = pending("signed", tmp_path)
    record_decision("signed", corpus.digest, "dana.k", "rejected", "PII in chat")
    with pytest.raises(AdapterOpsError, match="version 1 is rejected"):
        require_approved("signed", corpus.digest)
    path = Path(corpus.path) / DECISION_FILE
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    envelope["payload"] = base64.b64encode(json.dumps(statement | {"decision": "approved"}).encode()).decode()
    path.write_text(json.dumps(envelope))
    with pytest.raises(AdapterOpsError) as refused:
        require_approved("signed", corpus.digest)
    assert "not signed by the key the contract expects" in one_line(refused)
    path.write_text("{not json")
    with pytest.raises(AdapterOpsError, match="not a readable signed envelope"):
        require_approved("signed", corpus.digest)

    other = pending("signed", tmp_path, "b")
    record_decision("signed", other.digest, "sam.p", "approved")
    tags = require_approved("signed", other.digest)
    assert tags["approval.approver"] == "sam.p" and tags["approval.via"] == "owner-key"


def test_a_decision_for_other_bytes_or_by_a_non_owner_is_refused(contract, tmp_path):
    from adapterops.signing import create_key, sign_statement
    from tasks.approve.approval import DECISION_FILE, decision_statement, record_decision, require_approved

    first, second = pending("copied", tmp_path, "a"), pending("copied", tmp_path, "b")
    record_decision("copied", first.digest, "dana.k", "approved")
    copied = (Path(first.path) / DECISION_FILE).read_text()
    (Path(second.path) / DECISION_FILE).write_text(copied)               # another version's approval
    with pytest.raises(AdapterOpsError) as refused:
        require_approved("copied", second.digest)
    assert f"not 'copied' {second.digest}" in one_line(refused)

    mallory = create_key(tmp_path / "mallory.key")                          # a key the contract does not list
    for approver in ("dana.k", "mallory"):
        forged = decision_statement("copied", 2, second.digest, approver, "approved", "", "owner-key")
        (Path(second.path) / DECISION_FILE).write_text(json.dumps(sign_statement(forged, mallory)))
        with pytest.raises(AdapterOpsError) as refused:
            require_approved("copied", second.digest)
        assert ("not signed by the key" if approver == "dana.k" else "not an owner") in one_line(refused)
    with pytest.raises(AdapterOpsError, match="not an owner"):
        record_decision("copied", second.digest, "mallory", "approved")
    (Path(second.path) / DECISION_FILE).unlink()
    with pytest.raises(AdapterOpsError, match="does not match the public key"):
        record_decision("copied", second.digest, "dana.k", "approved", key_file=tmp_path / "mallory.key")


def test_policy_approvers_only_for_auto_pipelines(contract, tmp_path):
    from tasks.approve.approval import AUTO_APPROVER, record_decision, require_approved

    corpus = pending("policy", tmp_path)
    with pytest.raises(AdapterOpsError) as refused:
        record_decision("policy", corpus.digest, AUTO_APPROVER, "approved")       # approval: owner (the default)
    assert "automatic policy" in one_line(refused)
    result = CliRunner().invoke(app, ["corpus", "approve", "1", "--name", "policy", "--as", AUTO_APPROVER, "--yes"])
    assert result.exit_code != 0 and "automatic policy" in str(result.exception)
    # another config of the same name set to `approval: auto` decides nothing for the owner's version
    with pytest.raises(AdapterOpsError) as refused:
        record_decision("policy", corpus.digest, AUTO_APPROVER, "approved", approval="auto")
    assert "curated under `approval: owner`" in one_line(refused)
    record_decision("policy", corpus.digest, "dana.k", "rejected", "not yet")      # the owner's decision still stands
    auto = pending("policy", tmp_path, "auto", approval="auto")                   # curated under auto: its own digest
    assert auto.digest != corpus.digest
    record_decision("policy", auto.digest, AUTO_APPROVER, "approved", approval="auto")
    assert require_approved("policy", auto.digest, approval="auto")["approval.approver"] == AUTO_APPROVER
    with pytest.raises(AdapterOpsError, match="automatic policy"):
        require_approved("policy", auto.digest, approval="owner")              # an owner pipeline refuses it


def test_form_decisions_only_for_owners_the_contract_allows(contract, tmp_path):
    from tasks.approve.approval import VIA_FORM, record_decision, require_approved

    corpus = pending("form", tmp_path)
    with pytest.raises(AdapterOpsError, match="does not accept Prefect-form decisions by 'sam.p'"):
        record_decision("form", corpus.digest, "sam.p", "approved", via=VIA_FORM)
    record_decision("form", corpus.digest, "dana.k", "approved", via=VIA_FORM)
    assert require_approved("form", corpus.digest)["approval.via"] == VIA_FORM


def test_missing_keys_say_what_to_run(contract, tmp_path):
    from tasks.approve.approval import record_decision

    corpus = pending("keys", tmp_path)
    with pytest.raises(AdapterOpsError) as refused:
        record_decision("keys", corpus.digest, "lee.r", "approved")
    assert "lists no public key for 'lee.r'" in one_line(refused) and "keys init --as lee.r" in one_line(refused)
    with pytest.raises(AdapterOpsError) as refused:
        record_decision("keys", corpus.digest, "dana.k", "approved", key_file=tmp_path / "absent.key")
    assert "adapterops keys init --as dana.k" in one_line(refused)


def test_keys_init_makes_a_private_key_and_prints_the_contract_line(tmp_path):
    import stat

    from adapterops.signing import load_private_key, public_key_line

    key_file = tmp_path / "me.key"
    made = CliRunner().invoke(app, ["keys", "init", "--as", "me", "--key-file", str(key_file)])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    line = public_key_line(load_private_key(key_file).public_key())
    assert f'{{name: me, public_key: "{line}"}}' in made.output.replace("\n", "")
    again = CliRunner().invoke(app, ["keys", "init", "--as", "me", "--key-file", str(key_file)])
    assert "kept" in again.output and line in again.output.replace("\n", "")


def test_release_verifies_the_adapters_corpus_decision_not_tags(contract, tmp_path):
    from tasks.approve.approval import record_decision, require_approved_adapter

    corpus = pending("release", tmp_path)
    client = mlflow.MlflowClient()
    client.create_registered_model("release-gate")
    version = client.create_model_version("release-gate", source=str(tmp_path)).version
    client.set_model_version_tag("release-gate", version, "corpus.digest", corpus.digest)
    client.set_model_version_tag("release-gate", version, "approval.approver", "dana.k")     # a tag, not a decision
    with pytest.raises(AdapterOpsError, match="version 1 is pending"):
        require_approved_adapter("release", "release-gate", version)
    record_decision("release", corpus.digest, "dana.k", "approved")
    assert require_approved_adapter("release", "release-gate", version)["approval.approver"] == "dana.k"
    (Path(corpus.path) / "heldout.parquet").write_bytes(b"replaced")
    with pytest.raises(AdapterOpsError, match="changed since it was curated and approved"):
        require_approved_adapter("release", "release-gate", version)
