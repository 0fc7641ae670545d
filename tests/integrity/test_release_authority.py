"""Issue 24 item 2: the contract an adapter's corpus was curated with names who may promote and roll back (its
owners by default, or `releasers`); `release promote|rollback` are signed like approvals and refused otherwise;
the audit trail carries the signature, and `release history` says whether each one verifies."""

from __future__ import annotations

import json
import uuid

import mlflow

from tests.integrity.procs_approval import cli, finish, keyed_contract, trained_on_corpus


def two_promoted(tmp_path, people=("dana.k",)) -> str:
    """v1 and v2 of a new model, both trained on a corpus under a contract naming `people`; production at v2."""
    from tasks.release.registry import move_production

    client, name = mlflow.MlflowClient(), f"authority-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir(exist_ok=True)
    versions = [client.create_model_version(name, source=str(tmp_path / "adapter")).version for _ in range(3)]
    trained_on_corpus(client, name, versions, tmp_path, people)
    for version in ("1", "2"):
        move_production(client, client.get_registered_model(name), version, "promote", "release gate", "good")
    return name


def production(name: str) -> str:
    return str(mlflow.MlflowClient().get_registered_model(name).aliases["production"])


def test_a_non_owner_cannot_roll_back_and_an_owner_signs_the_rollback(tmp_path, workspace):
    from adapterops.signing import create_key
    from tasks.release import production_history

    name = two_promoted(tmp_path)
    code, output = finish(cli("release", "rollback", "--model", name, "--reason", "mine now", "--as", "mallory"))
    assert code == 1 and "error:" in output and "Traceback" not in output, output[-2000:]
    assert "'mallory' may not promote or roll back" in output and "dana.k" in output
    assert production(name) == "2"                                            # nothing moved
    create_key(tmp_path / "not-dana.key")
    code, output = finish(cli("release", "rollback", "--model", name, "--reason", "x", "--as", "dana.k",
                              "--key-file", str(tmp_path / "not-dana.key")))
    assert code == 1 and "does not match the public key" in output and production(name) == "2", output[-2000:]

    code, output = finish(cli("release", "rollback", "--model", name, "--reason", "v2 answers badly", "--as", "dana.k"))
    assert code == 0 and "v2 → v1" in output, output[-2000:]
    assert production(name) == "1"
    last = production_history(name)[-1]
    assert last["action"] == "rollback" and last["by"] == "dana.k" and last["signature"]["signatures"]
    code, output = finish(cli("release", "history", "--model", name))
    assert code == 0 and "signed" in output, output[-2000:]


def test_a_forged_trail_entry_does_not_verify(tmp_path, workspace):
    from tasks.release import production_history, release_contract, verify_move

    name = two_promoted(tmp_path)
    code, output = finish(cli("release", "rollback", "--model", name, "--reason", "bad answers", "--as", "dana.k"))
    assert code == 0, output[-2000:]
    client = mlflow.MlflowClient()
    entry = production_history(name)[-1]
    contract = release_contract(client.get_model_version(name, entry["version"]))[0]
    assert verify_move(name, entry, contract) == "signed"
    forged = entry | {"by": "mallory"}
    assert verify_move(name, forged, contract) == "does not match"
    client.set_registered_model_tag(name, "production.log.3", json.dumps(entry | {"version": "2", "previous": "1"}))
    assert verify_move(name, production_history(name)[-1], contract) == "does not match"


def test_releasers_narrow_who_may_move_production_and_promote_is_signed(tmp_path, workspace):
    """A contract with `releasers: [lee]`: dana.k approves corpora but may not promote; lee may, signed."""
    import yaml

    from tasks.approve.approval import record_decision
    from tasks.corpus.versions import publish_version
    from tasks.release import production_history
    from tests.integrity.procs_approval import SETTINGS, fake_stages

    contract = keyed_contract(tmp_path / "contracts", {"dana.k": {}, "lee": {}})
    data = yaml.safe_load(contract.read_text())
    data["releasers"] = ["lee"]
    contract.write_text(yaml.safe_dump(data))
    pipeline = f"releasers-{uuid.uuid4().hex[:6]}"
    corpus = publish_version(pipeline, fake_stages(tmp_path / "stages", pipeline), SETTINGS, tmp_path,
                             contract_file=contract)
    client, name = mlflow.MlflowClient(), f"releasers-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir()
    version = str(client.create_model_version(name, source=str(tmp_path / "adapter")).version)
    for key, value in {"corpus.digest": corpus.digest, "corpus.run_id": corpus.run_id,
                       "corpus.pipeline": pipeline}.items():
        client.set_model_version_tag(name, version, key, value)
    code, output = finish(cli("release", "promote", version, "--model", name, "--reason", "ship", "--as", "dana.k"))
    assert code == 1 and "'dana.k' may not promote or roll back" in output and "lee" in output, output[-2000:]
    code, output = finish(cli("release", "promote", version, "--model", name, "--reason", "ship", "--as", "lee"))
    assert code == 1 and "pending, not approved" in output, output[-2000:]      # the corpus approval is verified
    record_decision(pipeline, corpus.digest, "dana.k", "approved")
    code, output = finish(cli("release", "promote", version, "--model", name, "--reason", "ship", "--as", "lee"))
    assert code == 0 and "signed with their key" in output, output[-2000:]
    assert production(name) == version and production_history(name)[-1]["signature"]
