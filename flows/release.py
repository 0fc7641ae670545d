"""release: alias the candidate; move production only through the gate."""

from prefect import flow, task

from adapterops.config import Config
from adapterops.reporting import publish_markdown
from tasks.approval import require_approved_adapter
from tasks.registry import release_adapter

release_task = task(name="release")(release_adapter)
verify_approval_task = task(name="verify-approval")(require_approved_adapter)


@flow(name="release")
def release(config: Config, adapter: dict, evaluation: dict) -> dict:
    verify_approval_task(config.name, adapter["model_name"], adapter["version"], config.approval)  # signed, rehashed
    decision = release_task(config.release, adapter, evaluation)
    verdict = "promoted to production" if decision["promoted"] else "held at candidate"
    publish_markdown("release", f"{decision['model_name']} v{decision['version']} {verdict}", decision["reason"])
    return decision
