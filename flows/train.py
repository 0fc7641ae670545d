"""train: the approved corpus → a registered, adapter-only model version, in process or on a GPU work pool."""

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run, task_run

from adapterops.base_models import resolve_base_model
from adapterops.config import Config
from adapterops.errors import AdapterOpsError, retry_unless_user_error  # retries resume from the last checkpoint
from adapterops.progress import Progress
from adapterops.refs import AdapterRef, CorpusRef
from adapterops.tracking import adapter_experiment, ensure_experiment
from flows.reporting import publish_table
from tasks.train import load_adapter_ref, train_adapter, train_run_dir, truncation_note

POOL_POLL_SECONDS = 10   # how often a run on a work pool is checked


@task(name="train-lora", retry_condition_fn=retry_unless_user_error)
def train_step(config: Config, corpus: CorpusRef, resume: bool = False) -> AdapterRef:
    logger = get_run_logger()
    # a retry resumes; a new run resumes too when this run folder holds a checkpoint written for the same data
    # and settings (an earlier run was killed), else it starts over
    resume = resume or task_run.run_count > 1 or flow_run.run_count > 1 or "auto"
    run_dir = train_run_dir(corpus)
    if resume is True:
        logger.info("resuming from the last checkpoint, if any, in %s", run_dir)

    # steps with the total, elapsed time and an ETA, in the run's log: at most every 10 s, and the last step
    steps = Progress("train", config.train.max_steps, "steps", every_seconds=10,
                     on_update=lambda done, total, line: logger.info(line))

    def progress(step: int, metrics: dict) -> None:
        steps.update(step + 1, f"loss {metrics['loss']:.4f}, lr {metrics['learning_rate']:.2e}, "
                               f"{metrics['tokens_per_second']:.0f} tokens/s")

    base = resolve_base_model(config.recipe)   # where the model is loaded: a worker builds or finds it in its own workspace
    adapter = train_adapter(config.recipe, corpus, base, run_dir, model_name=config.release.model_name,
                            approval=config.approval, logged_config=config.model_dump(mode="json"), progress=progress,
                            resume=resume, extra_tags={"prefect.flow_run_id": str(flow_run.get_id() or "")})
    if note := truncation_note(adapter, config.train.max_length):
        logger.warning(note)
    return adapter


@flow(name="train")
def train(config: Config, corpus: CorpusRef, resume: bool = False) -> AdapterRef:
    """Train on the approved corpus version (refuses anything else); on a retry, resume from the last checkpoint."""
    adapter = train_step.with_options(retries=config.train.retries)(config, corpus, resume)
    publish_table("adapter", f"Adapter {adapter.model_name} v{adapter.version}", [
        {"what": k, "value": str(getattr(adapter, k))} for k in
        ("version", "base_name", "base_revision", "steps", "final_loss", "truncated", "resumed_from_step",
         "adapter_bytes", "logged_bytes", "device")])
    return adapter


def deployment_name(config: Config) -> str:
    """The train deployment that runs on the configured work pool (deployments/prefect.yaml)."""
    return f"train/{config.train.work_pool}"


def adapter_of_flow_run(config: Config, flow_run_id: str) -> AdapterRef:
    """The adapter a train flow run registered, read back from MLflow (shared by the worker and us)."""
    import mlflow

    runs = mlflow.search_runs([ensure_experiment(adapter_experiment(config.name))], output_format="list",
                              filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}' and attributes.status = 'FINISHED'")
    if not runs:
        raise AdapterOpsError(f"Train flow run {flow_run_id} finished but logged no training run to MLflow; check that "
                              "the worker uses the same MLFLOW_TRACKING_URI as this flow.")
    return load_adapter_ref(runs[0].info.run_id)


def train_on_work_pool(config: Config, corpus: CorpusRef) -> AdapterRef:
    """Run the train deployment on config.train.work_pool, wait for it, and return its adapter."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    name = deployment_name(config)
    attempts = config.train.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            run = run_deployment(name, parameters={"config": config.model_dump(mode="json"), "corpus": corpus.model_dump(mode="json"),
                                                   "resume": attempt > 1},
                                 timeout=None, poll_interval=POOL_POLL_SECONDS)
        except ObjectNotFound:
            raise AdapterOpsError(f"No deployment {name!r} for work pool {config.train.work_pool!r}: create it with "
                                  "`prefect deploy --prefect-file deployments/prefect.yaml --all`, or unset "
                                  "train.work_pool to train in process.") from None
        # a crash is the machine's (a worker or its process killed), not the run's: submit it again, and the new
        # run resumes from the checkpoint in the same run folder on that pool; a failure was retried in the run
        if not (run.state and run.state.is_crashed() and attempt < attempts):
            break
        get_run_logger().warning("training flow run %s on work pool %r crashed (%s); submitting it again, to resume "
                                 "from its last checkpoint (attempt %d of %d)", run.name, config.train.work_pool,
                                 run.state.message, attempt + 1, attempts)
    if not run.state or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        raise AdapterOpsError(f"Training flow run {run.name} on work pool {config.train.work_pool!r} ended {state}: "
                              f"{run.state.message if run.state else ''} See its logs in the Prefect UI; after fixing, "
                              "retry that flow run from the Prefect UI: a retry resumes from its last checkpoint.")
    return adapter_of_flow_run(config, str(run.id))
