"""A corpus version's files where they are used: the folder it was curated into, or, on a machine that does not
have that folder (a GPU worker elsewhere), a copy fetched from the version's MLflow run into this workspace.
Nothing here is trusted for being fetched: the gates rehash these bytes and verify the signed decision."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.refs import CorpusRef
from adapterops.workspace import resolve_workspace

DECISION_FILE = "decision.dsse.json"
FETCHED_FILES = ("manifest.json", "train.parquet", "heldout.parquet", "eval.parquet")   # what training and evaluation read


def version_folder(run) -> Path:
    """The version's folder on this machine: where it was curated, else its copy fetched from MLflow."""
    folder = Path(run.data.tags["corpus.path"])
    if folder.is_dir():
        return folder
    return fetched_copy(run)


def corpus_folder(corpus: CorpusRef) -> Path:
    """The same for the corpus reference the flows pass around (it names the version's run)."""
    folder = Path(corpus.path)
    if folder.is_dir():
        return folder
    import mlflow

    return fetched_copy(mlflow.MlflowClient().get_run(corpus.run_id))


def fetched_copy(run) -> Path:
    """Download the files once into ADAPTEROPS_HOME/corpus-fetched/RUN_ID; the decision file while there is none."""
    copy = resolve_workspace().root / "corpus-fetched" / run.info.run_id
    try:
        if not copy.is_dir():
            _download(run.info.run_id, [f"corpus/{name}" for name in FETCHED_FILES], copy)
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


def _has_artifact(run_id: str, folder: str, name: str) -> bool:
    import mlflow

    return any(item.path == f"{folder}/{name}" for item in mlflow.MlflowClient().list_artifacts(run_id, folder))


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
