"""retrain: the scheduled end-to-end run, curate → approve → train → evaluate → release."""

from prefect import flow, task

from adapterops.base_models import resolve_base_model
from adapterops.config import Config
from adapterops.errors import retry_unless_user_error
from adapterops.refs import CorpusRef
from flows.approve import approve
from flows.curate import curate
from flows.evaluate import evaluate
from flows.notify import emit_release
from flows.release import release
from flows.reporting import publish_markdown
from flows.staging import staging
from flows.train import train, train_on_work_pool
from tasks.release import decide
from tasks.train import reusable_version

reuse_task = task(name="find-trained-adapter", retries=2, retry_delay_seconds=5,
                  retry_condition_fn=retry_unless_user_error)(reusable_version)


@flow(name="retrain")
def retrain(config: Config) -> dict:
    """The whole chain; an unchanged corpus and recipe stops after approval: it was trained already."""
    corpus = curate(config)
    if (approval := approve(config, corpus)).get("elsewhere"):   # whoever decided trains it: not twice
        publish_markdown("retrain-approved-elsewhere", "Approved outside this run",
                         f"Corpus v{corpus.version} was approved by {approval['approver']} while this run waited; "
                         "the on-approval deployment (a CLI approval) or the run whose form approved it trains it.")
        return {"corpus": corpus, "approved_elsewhere": approval}
    return train_evaluate_release(config, corpus)


def train_evaluate_release(config: Config, corpus: CorpusRef) -> dict:
    """After approval, in the calling flow: skip what was trained already, else train → evaluate → release."""
    base = resolve_base_model(config.recipe)
    if (existing := reuse_task(config.recipe, config.release.model_name, corpus, base)) is not None:
        publish_markdown("retrain-unchanged", "Nothing to train",
                         f"{existing.model_name} v{existing.version} was already trained from corpus "
                         f"v{corpus.version} with this recipe ({existing.decision or 'no release decision'}).")
        return {"corpus": corpus, "reused": existing}
    # On a GPU work pool when one is configured (run_deployment, waits for it), else in this process.
    adapter = train_on_work_pool(config, corpus) if config.train.work_pool else train(config, corpus)
    evaluation = evaluate(config, corpus, adapter)
    # only a candidate the offline gate would promote is staged: a held one never reaches a server
    staged = staging(config, corpus, adapter, evaluation) if (
        config.release.staging and decide(config.release.gate, evaluation.summary).promote) else None
    decision = release(config, adapter, evaluation, staged)
    emit_release(decision, corpus, config.mlflow_ui_url)   # the adapterops-release automation tells people
    return {"corpus": corpus, "adapter": adapter, "evaluation": evaluation, "staging": staged, "release": decision}
