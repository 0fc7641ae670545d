"""evaluate: the candidate against the base model (adapter disabled) and production."""

from prefect import flow, task

from adapterops.config import Config
from adapterops.reporting import publish_table
from tasks.evaluate import evaluate_adapter

evaluate_task = task(name="held-out-evaluation")(evaluate_adapter)


@flow(name="evaluate")
def evaluate(config: Config, corpus: dict, adapter: dict) -> dict:
    results = evaluate_task(config, corpus, adapter)
    publish_table("evaluation", f"Held-out evaluation of v{adapter['version']}", [
        {"model": who, "loss": round(results[who]["loss"], 4), "perplexity": round(results[who]["perplexity"], 2)}
        for who in ("base", "candidate", "production") if who in results])
    return results
