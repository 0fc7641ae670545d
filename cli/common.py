"""What every command does before it runs: `prepare` the workspace and the tracking servers, and keep user
errors' tracebacks out of Prefect's logs. It lives beside the commands so they need not import cli.main.
"""

from __future__ import annotations

import logging
import warnings

from adapterops.config import Config
from adapterops.errors import AdapterOpsError
from adapterops.storage import is_disk_full
from adapterops.workspace import configure_environment, resolve_workspace


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a flow's exception with its traceback; for our user errors and a full disk one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and (isinstance(record.exc_info[1], AdapterOpsError) or is_disk_full(record.exc_info[1])):
            record.exc_info, record.exc_text = None, None
        return True


class _UserErrorsPrintedOnce(logging.Filter):
    """In the CLI a user error is printed once, by cli.main, as one line. Prefect would log it three more
    times (the task, its flow, the parent flow); those records are dropped. The flow run's state message in
    the Prefect UI still names the error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AdapterOpsError):
            return False
        try:      # "Task run failed with exception: AdapterOpsError(...)", "Finished in state Failed('... AdapterOpsError: ...')"
            text = record.getMessage()
        except Exception:          # a record whose arguments do not format is not ours to judge
            return True
        return AdapterOpsError.__name__ not in text


def prepare(config: Config | None = None) -> None:
    configure_environment(resolve_workspace(), config.mlflow_tracking_uri if config else None,
                          config.prefect_api_url if config else None)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # The embedded Prefect server's connection pool logs a cancelled rollback when the process exits.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)

    # A logger's own filters see every record it creates, whatever handlers Prefect installs later.
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsPrintedOnce) for f in logger.filters):   # prepare may run twice
            logger.addFilter(_UserErrorsPrintedOnce())
            logger.addFilter(_HideUserErrorTracebacks())


def setup() -> None:
    """prepare() without a config: the workspace and the tracking URI from the environment."""
    prepare()
