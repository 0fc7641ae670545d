"""release: alias the candidate; move production only through the gate."""

from prefect import flow, task

from adapterops.config import Config
from adapterops.reporting import publish_markdown
from tasks.evaluation_report import gate_markdown
from tasks.registry import release_adapter

release_task = task(name="release")(release_adapter)


@flow(name="release")
def release(config: Config, adapter: dict, evaluation: dict) -> dict:
    decision = release_task(config.release, adapter, evaluation)
    verdict = "promoted to production" if decision["promoted"] else "held at candidate"
    publish_markdown("release", f"{decision['model_name']} v{decision['version']} {verdict}", gate_markdown(decision))
    return decision
