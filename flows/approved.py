"""train-approved: what a deployment trigger on `adapterops.corpus.approved` runs: train → evaluate → release."""

from prefect import flow

from adapterops.config import Config
from flows.retrain import train_evaluate_release
from tasks.corpus import corpus_ref


@flow(name="train-approved")
def train_approved(config: Config, digest: str) -> dict:
    """Train the corpus version an owner just approved (the event's digest), then evaluate and release.

    Like `retrain` after its approval: an adapter already trained from it is reused, and training
    goes to `train.work_pool` when one is set.
    """
    return train_evaluate_release(config, corpus_ref(config.name, digest))
