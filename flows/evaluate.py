"""evaluate: the candidate against the base model (adapter disabled) and production, by the owner's scorers."""

from prefect import flow, task

from adapterops.base_models import resolve_base_model
from adapterops.config import Config
from adapterops.errors import retry_unless_user_error
from adapterops.refs import AdapterRef, CorpusRef, EvaluationResult
from flows.reporting import publish_markdown
from tasks.evaluate import evaluate_adapter, scores_markdown

# a registry fault is retried; a user error (a changed eval set, a bad scorer) would fail again
evaluate_task = task(name="held-out-evaluation", retries=1, retry_delay_seconds=5,
                     retry_condition_fn=retry_unless_user_error)(evaluate_adapter)


@flow(name="evaluate")
def evaluate(config: Config, corpus: CorpusRef, adapter: AdapterRef) -> EvaluationResult:
    results = evaluate_task(config.evaluation, config.recipe, corpus, adapter, resolve_base_model(config.recipe))
    publish_markdown("evaluation", f"Held-out evaluation of v{adapter.version}", scores_markdown(results))
    return results
