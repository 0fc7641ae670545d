"""retrain: the scheduled end-to-end run, curate → approve → train → evaluate → release."""

from prefect import flow, task

from adapterops.base_models import resolve_base_model
from adapterops.config import Config
from adapterops.errors import retry_unless_user_error
from adapterops.faults import crash_point
from adapterops.interrupts import at_step
from adapterops.pipeline_state import read_state, record_step, step_result
from adapterops.refs import AdapterRef, CorpusRef
from flows.approve import approve
from flows.curate import curate
from flows.evaluate import evaluate
from flows.notify import emit_release
from flows.release import release
from flows.reporting import publish_markdown
from flows.staging import staging
from flows.train import train, train_on_work_pool
from tasks.release import decide
from tasks.train import load_adapter_ref, reusable_version

reuse_task = task(name="find-trained-adapter", retries=2, retry_delay_seconds=5,
                  retry_condition_fn=retry_unless_user_error)(reusable_version)


@flow(name="retrain")
def retrain(config: Config) -> dict:
    """The whole chain; an unchanged corpus and recipe stops after approval: it was trained already."""
    at_step("curation")
    corpus = curate(config)
    at_step("approval")
    if (approval := approve(config, corpus)).get("elsewhere"):   # whoever decided trains it: not twice
        publish_markdown("retrain-approved-elsewhere", "Approved outside this run",
                         f"Corpus v{corpus.version} was approved by {approval['approver']} while this run waited; "
                         "the on-approval deployment (a CLI approval) or the run whose form approved it trains it.")
        return {"corpus": corpus, "approved_elsewhere": approval}
    return train_evaluate_release(config, corpus)


def resumed_adapter(existing) -> tuple[AdapterRef | None, dict]:
    """The adapter already trained from this corpus and recipe and the steps its state file records; (None, state)
    when its release decision was made (recorded, or, for versions older than state files, in its tags)."""
    state = read_state(existing.model_name, existing.version)
    if "released" in state or (not state and existing.decision):
        return None, state
    done, adapter = step_result(state, "trained")
    if not done:   # trained, registered, then interrupted before the step was recorded: its run logged the ref
        import mlflow

        version = mlflow.MlflowClient().get_model_version(existing.model_name, existing.version)
        adapter = load_adapter_ref(version.tags["train.run_id"])
        record_step(existing.model_name, existing.version, "trained", adapter)
    return adapter, state


def train_evaluate_release(config: Config, corpus: CorpusRef) -> dict:
    """After approval, in the calling flow: train → evaluate → stage → release, each step recorded in the version's
    state file as it is done; a version already trained from this corpus and recipe continues from the first
    step not done (nothing to do only once its release decision is recorded)."""
    at_step("training")
    base = resolve_base_model(config.recipe)
    state: dict = {}
    if (existing := reuse_task(config.recipe, config.release.model_name, corpus, base)) is not None:
        adapter, state = resumed_adapter(existing)
        if adapter is None:
            publish_markdown("retrain-unchanged", "Nothing to train",
                             f"{existing.model_name} v{existing.version} was already trained from corpus "
                             f"v{corpus.version} with this recipe ({existing.decision or 'released'}).")
            return {"corpus": corpus, "reused": existing}
        first = next(step for step in ("evaluated", "staged", "released") if step not in state)
        publish_markdown("retrain-resumed", f"Continuing {adapter.model_name} v{adapter.version}",
                         f"Trained from corpus v{corpus.version} with this recipe by an earlier run that stopped "
                         f"before its release decision; continuing from step `{first.removesuffix('d')}`.")
    else:
        # On a GPU work pool when one is configured (run_deployment, waits for it), else in this process.
        adapter = train_on_work_pool(config, corpus) if config.train.work_pool else train(config, corpus)
        record_step(adapter.model_name, adapter.version, "trained", adapter)
        crash_point("after-train")
    name, version = adapter.model_name, adapter.version
    done, evaluation = step_result(state, "evaluated")
    at_step("evaluation")
    if not done:
        evaluation = evaluate(config, corpus, adapter)
        record_step(name, version, "evaluated", evaluation)
        crash_point("after-evaluate")
    done, staged = step_result(state, "staged")
    at_step("staging")
    if not done:
        # only a candidate the offline gate would promote is staged: a held one never reaches a server
        staged = staging(config, corpus, adapter, evaluation) if (
            config.release.staging and decide(config.release.gate, evaluation.summary, config.release.waivers).promote) else None
        record_step(name, version, "staged", staged)
        crash_point("after-staging")
    at_step("release")
    decision = release(config, adapter, evaluation, staged)
    record_step(name, version, "released", decision)
    emit_release(decision, corpus, config.mlflow_ui_url)   # the adapterops-release automation tells people
    return {"corpus": corpus, "adapter": adapter, "evaluation": evaluation, "staging": staged, "release": decision,
            "resumed_from": next((s for s in ("evaluated", "staged", "released") if s not in state), None)
            if existing is not None else None}
