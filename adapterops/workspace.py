"""The workspace folder (ADAPTEROPS_HOME) that holds every embedded service's state."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.server_guard import guard_prefect_server

DEFAULT_HOME = ".adapterops"
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@dataclass(frozen=True)
class Workspace:
    """Paths under one workspace root; nothing here touches the disk until `create`."""

    root: Path

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_db(self) -> Path:
        return self.mlflow_dir / "mlflow.db"

    @property
    def artifact_root(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    def create(self) -> "Workspace":
        for path in (self.mlflow_dir, self.artifact_root, self.prefect_home, self.models_dir,
                     self.data_dir, self.runs_dir, self.corpus_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db.resolve()}"


MIN_FREE_BYTES = 100 * 10**6   # a demo run writes ~60 MB (stores, model, corpus, adapter); less free fails mid-way


def require_free_space(ws: Workspace, minimum: int = MIN_FREE_BYTES) -> None:
    """Refuse to start a run on a nearly full disk, with one line, rather than fail in the middle of it."""
    ws.create()
    free = shutil.disk_usage(ws.root).free
    if free < minimum:
        raise AdapterOpsError(f"Only {free / 1e6:.1f} MB free on the disk holding the workspace {ws.root}; a run "
                              f"needs at least {minimum / 1e6:.0f} MB. Free space there or set ADAPTEROPS_HOME to a "
                              "larger disk, then run again.")


def resolve_workspace(home: str | os.PathLike | None = None) -> Workspace:
    """The workspace named by the argument, else ADAPTEROPS_HOME, else ./.adapterops."""
    root = home or os.environ.get("ADAPTEROPS_HOME") or DEFAULT_HOME
    return Workspace(Path(root).expanduser().resolve())


def configure_environment(ws: Workspace, mlflow_uri: str | None = None,
                          prefect_api_url: str | None = None) -> None:
    """Point MLflow and Prefect at the workspace unless servers are named.

    Must run before prefect is imported: Prefect reads PREFECT_HOME when its settings load.
    """
    ws.create()
    os.environ["ADAPTEROPS_HOME"] = str(ws.root)
    os.environ.setdefault("PREFECT_HOME", str(ws.prefect_home))
    if prefect_api_url:
        os.environ["PREFECT_API_URL"] = prefect_api_url
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's 20 s default for its local server to answer is missed on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # progress lines (adapterops.progress) reach a run's logs in the Prefect UI too
    extra = [n for n in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if n.strip()]
    if "adapterops" not in extra:
        os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(extra + ["adapterops"])
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")   # outside a run: console only
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    # MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) take ~4 min to report an unreachable
    # server; a step fails in seconds instead and Prefect's task retries take over
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or ws.mlflow_uri()
    os.environ["MLFLOW_TRACKING_URI"] = uri

    guard_prefect_server()   # the temporary Prefect server, if one starts, dies with this process
