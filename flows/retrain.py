"""retrain: the scheduled end-to-end run, curate → approve → train → evaluate → release."""

from __future__ import annotations

from prefect import flow

from adapterops.config import Config
from flows.approve import approve
from flows.curate import curate
from flows.evaluate import evaluate
from flows.release import release
from flows.train import train


@flow(name="retrain")
def retrain(config: Config) -> dict:
    corpus = curate(config)
    approve(config, corpus)
    adapter = train(config, corpus)
    evaluation = evaluate(config, corpus, adapter)
    decision = release(config, adapter, evaluation)
    return {"corpus": corpus, "adapter": adapter, "evaluation": evaluation, "release": decision}
