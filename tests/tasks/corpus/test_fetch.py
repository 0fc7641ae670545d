"""A worker without the curation folder reads a version's files from its MLflow run, into its own workspace."""

import mlflow

from tasks.corpus.fetch import DECISION_FILE, FETCHED_FILES, corpus_folder, version_folder
from tests.refs import fake_corpus


def curated_run(tmp_path, folder):
    files = tmp_path / "curated"
    files.mkdir()
    for name in FETCHED_FILES + ("dedup_report.json",):
        (files / name).write_bytes(f"bytes of {name}".encode())
    with mlflow.start_run() as run:
        mlflow.set_tags({"corpus.path": str(folder), "corpus.version": "3"})
        mlflow.log_artifacts(str(files), artifact_path="corpus")
    return mlflow.get_run(run.info.run_id), files


def test_a_missing_version_folder_is_fetched_once_and_the_decision_when_it_exists(tmp_path, workspace):
    run, files = curated_run(tmp_path, tmp_path / "on-another-machine")
    copy = version_folder(run)
    assert copy == workspace.root / "corpus-fetched" / run.info.run_id
    assert sorted(p.name for p in copy.iterdir()) == sorted(FETCHED_FILES)     # what training reads, no more
    assert all((copy / name).read_bytes() == (files / name).read_bytes() for name in FETCHED_FILES)

    (files / DECISION_FILE).write_text('{"payload": "signed"}')               # the owner decides later
    mlflow.MlflowClient().log_artifact(run.info.run_id, str(files / DECISION_FILE), artifact_path="approvals")
    assert (version_folder(run) / DECISION_FILE).read_text() == '{"payload": "signed"}'
    assert corpus_folder(fake_corpus(path=run.data.tags["corpus.path"], run_id=run.info.run_id)) == copy


def test_the_curation_folder_is_used_where_it_exists(tmp_path, workspace):
    here = workspace.corpus_dir / "fetch-test" / "v0003"
    here.mkdir(parents=True)
    run, _ = curated_run(tmp_path, here)
    assert version_folder(run) == here
    assert not (workspace.root / "corpus-fetched" / run.info.run_id).exists()


def test_a_corpus_path_tag_pointing_outside_the_workspace_is_not_followed(tmp_path, workspace):
    forged = tmp_path / "uploaded-artifacts" / "v0003"     # e.g. an artifact folder anyone with MLflow access wrote
    forged.mkdir(parents=True)
    run, _ = curated_run(tmp_path, forged)
    assert version_folder(run) == workspace.root / "corpus-fetched" / run.info.run_id


def test_a_decision_is_refused_where_the_version_folder_is_not(tmp_path, workspace):
    import pytest

    from adapterops.errors import AdapterOpsError
    from tasks.approve.approval import record_decision

    mlflow.set_experiment("elsewhere/corpus")
    run, _ = curated_run(tmp_path, tmp_path / "on-the-curation-machine")
    client = mlflow.MlflowClient()
    for key, value in {"corpus.digest": "sha256:" + "ab" * 32, "contract": "support_tickets"}.items():
        client.set_tag(run.info.run_id, key, value)
    with pytest.raises(AdapterOpsError, match="is not on this machine; decide where it was curated"):
        record_decision("elsewhere", "sha256:" + "ab" * 32, "dana.k", "approved")
    assert not (workspace.root / "corpus-fetched" / run.info.run_id / DECISION_FILE).exists()
