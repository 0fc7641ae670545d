"""train: the approved corpus → a registered, adapter-only model version."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from adapterops.config import Config
from adapterops.reporting import publish_table
from adapterops.workspace import resolve_workspace
from tasks.train import train_adapter


@task(name="train-lora")
def train_step(config: Config, corpus: dict) -> dict:
    logger = get_run_logger()
    run_dir = resolve_workspace().runs_dir / f"train-{flow_run.get_id() or 'local'}"

    def progress(step: int, metrics: dict) -> None:
        if step % config.train.log_every == 0 or step == config.train.max_steps - 1:
            logger.info("step %d/%d loss %.4f lr %.2e %.0f tokens/s", step + 1, config.train.max_steps,
                        metrics["loss"], metrics["learning_rate"], metrics["tokens_per_second"])

    return train_adapter(config, corpus, run_dir, progress)


@flow(name="train")
def train(config: Config, corpus: dict) -> dict:
    """Train on the approved corpus version; refuses anything else."""
    adapter = train_step(config, corpus)
    publish_table("adapter", f"Adapter {adapter['model_name']} v{adapter['version']}", [
        {"what": k, "value": str(adapter[k])} for k in
        ("version", "base_name", "base_revision", "steps", "final_loss", "adapter_bytes", "logged_bytes", "device")])
    return adapter
