"""Issue 24 item 1 and issue 25 item 3: everything a gate uses is read from files the version holds (the contract it
was curated with, found by its digest; the approval policy it was curated under), never from an MLflow tag or an
artifact a tag points at. The forgeries use MLflow write access only, and the decisions are real CLI processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from adapterops.errors import AdapterOpsError
from tests.integrity.procs_approval import SETTINGS, cli, fake_stages, finish, keyed_contract, owner_key_line, python


def curated(pipeline: str, tmp_path: Path, approval: str = "owner", contract: Path | None = None):
    """A corpus version curated under `approval` with a contract given by path (owners dana.k and policy:auto)."""
    from tasks.corpus.versions import publish_version

    contract = contract or keyed_contract(tmp_path / "contracts", {"dana.k": {}, "policy:auto": {}})
    return publish_version(pipeline, fake_stages(tmp_path / "stages" / pipeline, pipeline),
                           SETTINGS | {"approval": approval}, tmp_path, contract_file=contract), contract


def forged_contract(tmp_path: Path, original: Path) -> Path:
    """The contract with mallory (who made herself a key) as its only owner."""
    data = yaml.safe_load(original.read_text())
    data["owners"] = [{"name": "mallory", "public_key": owner_key_line("mallory")}]
    path = tmp_path / "forged" / "support_tickets.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def upload_forgery(corpus, tmp_path: Path, contract: Path) -> None:
    """What MLflow write access allows: upload a forged contract and a forged version folder as artifacts, then point
    the version's `contract` and `corpus.path` tags at them (with a local artifact root they are files here)."""
    client = mlflow.MlflowClient()
    folder = tmp_path / "forged-folder"
    shutil.copytree(corpus.path, folder)
    shutil.copyfile(contract, folder / "contract.yaml")
    client.log_artifact(corpus.run_id, str(contract), artifact_path="forged")
    client.log_artifacts(corpus.run_id, str(folder), artifact_path="forged-folder")
    artifacts = Path(mlflow.get_run(corpus.run_id).info.artifact_uri.removeprefix("file://"))
    client.set_tag(corpus.run_id, "contract", str(artifacts / "forged" / contract.name))
    client.set_tag(corpus.run_id, "corpus.path", str(artifacts / "forged-folder"))


def test_a_forged_contract_tag_approves_nothing(tmp_path, workspace):
    from tasks.approve.approval import require_approved

    corpus, original = curated("forged-tag", tmp_path)
    upload_forgery(corpus, tmp_path, forged_contract(tmp_path, original))
    code, output = finish(cli("corpus", "approve", "1", "--name", "forged-tag", "--as", "mallory", "--yes"))
    assert code == 1 and "error:" in output and "Traceback" not in output, output[-2000:]
    assert "'mallory' is not an owner of contract" in output and "dana.k" in output
    with pytest.raises(AdapterOpsError, match="version 1 is pending"):
        require_approved("forged-tag", corpus.digest)
    code, output = finish(cli("corpus", "approve", "1", "--name", "forged-tag", "--as", "dana.k", "--yes"))
    assert code == 0, output[-2000:]                                  # the owner of the curated contract decides
    assert require_approved("forged-tag", corpus.digest)["approval.approver"] == "dana.k"


def test_policy_auto_approves_only_versions_curated_under_approval_auto(tmp_path, workspace):
    """Another config of the same name with `approval: auto` decides nothing for the owner's version, whatever the
    tags say; the owner's later decision still stands."""
    corpus, _ = curated("two-configs", tmp_path)
    client = mlflow.MlflowClient()
    for key, value in {"approval": "auto", "corpus.approval": "auto", "approval.policy": "auto"}.items():
        client.set_tag(corpus.run_id, key, value)                    # MLflow-only forgeries of the policy
    code, output = finish(python(
        "from tasks.approve.approval import record_decision\n"
        f"record_decision('two-configs', {corpus.digest!r}, 'policy:auto', 'approved', approval='auto', announce=False)"))
    assert code != 0 and "curated under `approval: owner`" in output, output[-2000:]
    code, output = finish(cli("corpus", "reject", "1", "--name", "two-configs", "--as", "dana.k", "--note", "no",
                              "--yes"))
    assert code == 0 and "rejected by dana.k" in output, output[-2000:]


def test_a_contract_by_path_is_the_one_used_and_a_change_after_curation_is_refused(tmp_path, workspace, monkeypatch):
    """No data_contracts/ file and no ADAPTEROPS_CONTRACTS: the contract a version was curated with is stored with it
    and used wherever it is; edited after curation, it is refused by name with both digests."""
    from adapterops.storage import file_digest
    from tasks.approve.approval import record_decision, require_approved

    monkeypatch.delenv("ADAPTEROPS_CONTRACTS", raising=False)
    contract = keyed_contract(tmp_path / "elsewhere", {"dana.k": {}})
    helpdesk = contract.with_name("helpdesk_contract.yaml")
    contract.rename(helpdesk)
    corpus, _ = curated("by-path", tmp_path, contract=helpdesk)
    record_decision("by-path", corpus.digest, "dana.k", "approved")
    assert require_approved("by-path", corpus.digest)["approval.approver"] == "dana.k"
    helpdesk.rename(tmp_path / "moved.yaml")                        # moved away: the stored copy is used
    assert require_approved("by-path", corpus.digest)["approval.approver"] == "dana.k"
    recorded = file_digest(tmp_path / "moved.yaml")
    edited = yaml.safe_load((tmp_path / "moved.yaml").read_text()) | {"description": "edited after curation"}
    helpdesk.write_text(yaml.safe_dump(edited))                      # back where it was, changed
    with pytest.raises(AdapterOpsError) as refused:
        require_approved("by-path", corpus.digest)
    text = str(refused.value)
    assert "Contract 'support_tickets'" in text and str(helpdesk) in text and "\n" not in text
    assert recorded in text and file_digest(helpdesk) in text


def test_an_edited_stored_contract_is_refused(tmp_path, workspace):
    from tasks.approve.approval import record_decision, require_approved

    corpus, original = curated("stored-edit", tmp_path)
    record_decision("stored-edit", corpus.digest, "dana.k", "approved")
    original.unlink()
    shutil.copyfile(forged_contract(tmp_path, keyed_contract(tmp_path / "copy", {"dana.k": {}})),
                    Path(corpus.path) / "contract.yaml")
    with pytest.raises(AdapterOpsError, match="stored contract .* changed since curation"):
        require_approved("stored-edit", corpus.digest)


def test_labeling_reads_the_version_folder_and_its_stored_contract_not_the_tags(tmp_path, workspace):
    """`label export` after the tags were pointed at a forged folder (one record left) and a forged contract: the
    tasks are the version's own records, and the run does not fail on the forged contract."""
    import pandas as pd

    corpus, original = curated("label-tags", tmp_path)
    upload_forgery(corpus, tmp_path, forged_contract(tmp_path, original))
    forged = Path(mlflow.get_run(corpus.run_id).data.tags["corpus.path"])
    pd.read_parquet(forged / "train.parquet").head(1).to_parquet(forged / "train.parquet")
    out = tmp_path / "tasks.jsonl"
    code, output = finish(cli("label", "export", "1", "--name", "label-tags", "--out", str(out)))
    assert code == 0, output[-2000:]
    records = pd.read_parquet(Path(corpus.path) / "train.parquet")
    assert len(out.read_text().splitlines()) == len(records) > 1, output[-2000:]
