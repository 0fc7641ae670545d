"""retrain: the scheduled end-to-end run, curate → approve → train → evaluate → release."""

from __future__ import annotations

from prefect import flow

from adapterops.config import Config
from flows.approve import approve
from flows.curate import curate
from flows.evaluate import evaluate
from flows.release import release
from flows.train import train, train_on_work_pool


@flow(name="retrain")
def retrain(config: Config) -> dict:
    corpus = curate(config)
    approve(config, corpus)
    # On a GPU work pool when one is configured (run_deployment, waits for it), else in this process.
    adapter = train_on_work_pool(config, corpus) if config.train.work_pool else train(config, corpus)
    evaluation = evaluate(config, corpus, adapter)
    decision = release(config, adapter, evaluation)
    return {"corpus": corpus, "adapter": adapter, "evaluation": evaluation, "release": decision}
