"""train-approved: what a deployment trigger on `adapterops.corpus.approved` runs: train → evaluate → release."""

from prefect import flow

from adapterops.config import Config
from flows.evaluate import evaluate
from flows.release import release
from flows.train import train
from tasks.corpus import corpus_ref


@flow(name="train-approved")
def train_approved(config: Config, digest: str) -> dict:
    """Train the corpus version an owner just approved (the event's digest), then evaluate and release."""
    corpus = corpus_ref(config.name, digest)
    adapter = train(config, corpus)
    evaluation = evaluate(config, corpus, adapter)
    return {"corpus": corpus, "adapter": adapter, "evaluation": evaluation, "release": release(config, adapter, evaluation)}
