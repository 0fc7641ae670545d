"""release: alias the candidate; move production only through the gate."""

from prefect import flow, task

from adapterops.config import Config
from adapterops.errors import retry_unless_user_error
from adapterops.refs import AdapterRef, EvaluationResult, ReleaseDecision, StagingResult
from flows.reporting import publish_markdown
from tasks.approve import require_approved_adapter
from tasks.evaluate import gate_markdown
from tasks.release import release_adapter

# every step of a release is idempotent and an interrupted move is finished on the next read: safe to retry
release_task = task(name="release", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_user_error)(
    release_adapter)
verify_approval_task = task(name="verify-approval")(require_approved_adapter)


@flow(name="release")
def release(config: Config, adapter: AdapterRef, evaluation: EvaluationResult,
            staging: StagingResult | None = None) -> ReleaseDecision:
    verify_approval_task(config.name, adapter.model_name, adapter.version, config.approval)  # signed, rehashed
    decision = release_task(config.release, adapter, evaluation, staging)
    verdict = "promoted to production" if decision.promoted else "held at candidate"
    publish_markdown("release", f"{decision.model_name} v{decision.version} {verdict}", gate_markdown(decision))
    return decision
