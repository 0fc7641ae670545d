"""A corpus version's files where they are used: the folder it was curated into, or, on a machine that does not
have that folder (a GPU worker elsewhere), a copy fetched from the version's MLflow run into this workspace.
Nothing here is trusted for being fetched: the gates rehash these bytes and verify the signed decision."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.refs import CorpusRef
from adapterops.workspace import resolve_workspace

DECISION_FILE = "decision.dsse.json"
CONTRACT_FILE = "contract.yaml"      # the bytes of the contract the version was curated with
# what training, evaluation and the gates read
FETCHED_FILES = ("manifest.json", "train.parquet", "heldout.parquet", "eval.parquet", CONTRACT_FILE)


def local_folder(pipeline: str, digest: str, version: int | None = None) -> Path | None:
    """The version folder under this workspace whose manifest names this pipeline and digest; None if there is none.

    Found from the workspace and the digest, never from the run's `corpus.path` tag: a tag can point anywhere
    (an artifact folder anyone with MLflow write access uploaded), the workspace's corpus folder cannot.
    """
    root = resolve_workspace().corpus_dir / pipeline
    hinted = [root / f"v{int(version):04d}"] if version is not None else []
    for folder in hinted + sorted(root.glob("v[0-9]*")):
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("digest") == digest and manifest.get("pipeline") == pipeline:
            return folder
    return None


def trusted_folder(pipeline: str, digest: str, run) -> tuple[Path, bool]:
    """(folder, local) for a gate: the workspace's own version folder, else (local False) the copy fetched from
    the version's MLflow run, which a gate trusts only where a local contract file anchors it."""
    folder = local_folder(pipeline, digest, run.data.tags.get("corpus.version"))
    if folder is not None:
        return folder, True
    return fetched_copy(run), False


def version_folder(run) -> Path:
    """The version's folder on this machine: where it was curated, else its copy fetched from MLflow.

    The `corpus.path` tag is followed only into this workspace's corpus folder (a tag pointed at an uploaded
    artifact folder is not a version folder); gates find the folder by digest instead (trusted_folder).
    """
    folder = Path(run.data.tags["corpus.path"])
    root = resolve_workspace().corpus_dir.resolve()
    if folder.is_dir() and folder.resolve().is_relative_to(root):
        return folder
    return fetched_copy(run)


def corpus_folder(corpus: CorpusRef) -> Path:
    """The same for the corpus reference the flows pass around (it names the version's run)."""
    folder = local_folder(corpus.pipeline, corpus.digest, corpus.version)
    if folder is not None:
        return folder
    import mlflow

    return fetched_copy(mlflow.MlflowClient().get_run(corpus.run_id))


def fetched_copy(run) -> Path:
    """Download the files once into ADAPTEROPS_HOME/corpus-fetched/RUN_ID; the decision file while there is none."""
    copy = resolve_workspace().root / "corpus-fetched" / run.info.run_id
    try:
        if not copy.is_dir():
            names = [item.path for item in mlflow_artifacts(run.info.run_id, "corpus")]
            _download(run.info.run_id, [f"corpus/{n}" for n in FETCHED_FILES if f"corpus/{n}" in names], copy)
        if not (copy / DECISION_FILE).exists() and _has_artifact(run.info.run_id, "approvals", DECISION_FILE):
            _download(run.info.run_id, [f"approvals/{DECISION_FILE}"], copy)
    except AdapterOpsError:
        raise
    except Exception as error:   # MLflow's or the network's: the store is down, or the run lost its artifacts
        import mlflow

        raise AdapterOpsError(f"Corpus version {run.data.tags.get('corpus.version', '?')} is not on this machine "
                              f"({run.data.tags['corpus.path']}) and fetching it from its MLflow run {run.info.run_id} "
                              f"at {mlflow.get_tracking_uri()} failed: {str(error).splitlines()[0][:200]}. Check that "
                              "this worker uses the same MLFLOW_TRACKING_URI as curation, then retry.") from None
    return copy


def mlflow_artifacts(run_id: str, folder: str) -> list:
    import mlflow

    return mlflow.MlflowClient().list_artifacts(run_id, folder)


def _has_artifact(run_id: str, folder: str, name: str) -> bool:
    return any(item.path == f"{folder}/{name}" for item in mlflow_artifacts(run_id, folder))


def _download(run_id: str, paths: list[str], into: Path) -> None:
    """The files staged in a temporary folder beside `into`, then moved in: a crash leaves no half file."""
    import mlflow

    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=into.parent, prefix=f".{into.name}-"))
    try:
        for path in paths:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(staging / ".dl"))
            os.replace(local, staging / Path(path).name)
        shutil.rmtree(staging / ".dl", ignore_errors=True)
        if not into.is_dir():
            try:
                os.rename(staging, into)     # the whole copy appears at once
                return
            except OSError:
                if not into.is_dir():        # else another process fetched it meanwhile: add to theirs
                    raise
        for path in paths:
            os.replace(staging / Path(path).name, into / Path(path).name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
