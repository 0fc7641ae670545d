"""Run a blocking call on a thread while the test drives Prefect from the main one."""

import contextvars
import threading


def start_in_background(call, *args) -> tuple[threading.Thread, dict]:
    """call(*args) on a daemon thread with this context (Prefect's settings); the dict gets 'result' or 'error'."""
    outcome = {}

    def run():
        try:
            outcome["result"] = call(*args)
        except Exception as error:  # the test reports it
            outcome["error"] = error

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    return thread, outcome


def wait_for_flow_runs(flow_run_filter, seconds: float = 60, until=bool) -> list:
    """The flow runs matching the filter, polled until `until(runs)` (one at least) or `seconds` have passed."""
    import time

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + seconds
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=flow_run_filter)
            if until(runs) or time.monotonic() > deadline:
                return runs
            time.sleep(0.5)
