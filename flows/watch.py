"""watch: a window of recorded production traffic against the corpus and the release-time evaluation; a report
artifact, and a notification through the automations when a threshold trips (deployments/automations.yaml)."""

from datetime import datetime

from prefect import flow, task

from adapterops.config import Config
from adapterops.errors import retry_unless_user_error
from adapterops.refs import WatchResult
from flows.notify import emit_watch_alert
from flows.reporting import publish_markdown
from tasks.watch import report_markdown, watch_window

watch_task = task(name="watch-window", retries=1, retry_delay_seconds=5,
                  retry_condition_fn=retry_unless_user_error)(watch_window)


@flow(name="watch")
def watch(config: Config, store: str | None = None, until: datetime | None = None) -> WatchResult:
    """The window of config.watch.window_days ending `until` (default: now); `store`: another traffic store."""
    result = watch_task(config, now=until, store=store)
    publish_markdown("watch", f"Watch of {result.model_name} v{result.version}",
                     report_markdown(result.model_dump(mode="json")))
    if result.alerts:
        emit_watch_alert(result, config.mlflow_ui_url)
    return result
