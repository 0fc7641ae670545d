"""What every command does before it runs: `prepare` the workspace and the tracking servers, and keep user
errors' tracebacks out of Prefect's logs. It lives beside the commands so they need not import cli.main.
"""

from __future__ import annotations

import logging
import threading
import warnings

from adapterops.config import Config
from adapterops.error_log import log_traceback
from adapterops.errors import AdapterOpsError
from adapterops.processes import tag_new_runs
from adapterops.storage import is_disk_full
from adapterops.workspace import configure_environment, resolve_workspace


def _expected_fault(error: BaseException | None) -> bool:
    """A fault the CLI turns into one line: ours, a full disk, a signal, an unreachable or failing store."""
    if error is None:
        return False
    if isinstance(error, (AdapterOpsError, KeyboardInterrupt, ConnectionError)) or is_disk_full(error):
        return True
    if type(error).__name__ == "Interrupted":
        return True
    names = {type(e).__name__ for e in (error, error.__cause__, error.__context__) if e is not None}
    return bool(names & {"TerminationSignal", "MlflowException", "RestException", "ConnectError", "MaxRetryError",
                         "ConnectionError", "HTTPStatusError", "SafetensorError"})


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a flow's exception with its traceback, once per task and flow it crosses; for the faults the
    CLI reports in one line, the traceback goes to the error log once and the terminal gets the message only."""

    logged: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if _expected_fault(error):
            if id(error) not in self.logged and not isinstance(error, AdapterOpsError):
                self.logged.add(id(error))
                log_traceback(error, f"logged by {record.name}: {record.getMessage()[:500]}")
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


def _thread_fault(args) -> None:
    if _expected_fault(args.exc_value):
        log_traceback(args.exc_value, f"in thread {args.thread.name if args.thread else '?'}")
    else:
        threading.__excepthook__(args)


def prepare(config: Config | None = None) -> None:
    configure_environment(resolve_workspace(), config.mlflow_tracking_uri if config else None,
                          config.prefect_api_url if config else None)
    tag_new_runs()   # MLflow runs this process starts name it: the next run marks them KILLED if it dies
    warnings.filterwarnings("ignore", category=FutureWarning)
    # The embedded Prefect server's connection pool logs a cancelled rollback when the process exits.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)

    # A logger's own filters see every record it creates, whatever handlers Prefect installs later.
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsPrintedOnce) for f in logger.filters):   # prepare may run twice
            logger.addFilter(_UserErrorsPrintedOnce())
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine",
                 "prefect.events.clients", "prefect.client", "mlflow.store.db.utils", "mlflow.utils.async_logging",
                 "mlflow.system_metrics.system_metrics_monitor", "mlflow.tracking._tracking_service.client"):
        logging.getLogger(name).addFilter(_HideUserErrorTracebacks())
    threading.excepthook = _thread_fault   # a background thread's fault (metrics upload) goes to the error log


def setup() -> None:
    """prepare() without a config: the workspace and the tracking URI from the environment."""
    prepare()
