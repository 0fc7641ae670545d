"""Held-out evaluation: completion-token loss of base, candidate and production on the same examples."""

from __future__ import annotations

import math
from contextlib import nullcontext

from tasks.train import IGNORE, Example, collate


def per_example_loss(model, examples: list[Example], pad_id: int, batch_size: int = 16,
                     disable_adapter: bool = False) -> list[float]:
    """Mean completion-token loss of each example; with disable_adapter, the base model alone."""
    import torch

    device = next(model.parameters()).device
    losses: list[float] = []
    context = model.disable_adapter() if disable_adapter else nullcontext()
    with torch.no_grad(), context:
        for start in range(0, len(examples), batch_size):
            ids, mask, labels = (t.to(device) for t in collate(examples[start:start + batch_size], pad_id))
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = labels[:, 1:]
            token_loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE, reduction="none"
            ).view(targets.shape)
            counted = (targets != IGNORE).sum(dim=1).clamp(min=1)
            losses.extend((token_loss.sum(dim=1) / counted).tolist())
    return losses


def summarise(losses: list[float]) -> dict:
    mean = sum(losses) / len(losses)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "examples": len(losses)}


def paired_difference(candidate: list[float], reference: list[float]) -> dict:
    """Mean per-example loss difference (candidate - reference) with a normal 95% interval."""
    diffs = [c - r for c, r in zip(candidate, reference)]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n) if n else 0.0
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}


# --- wrapper: base vs candidate vs production on the evaluation set, logged to MLflow ------------

def _adapter_path(model_name: str, version: str) -> str:
    from pathlib import Path

    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}"))
    return str(next(p.parent for p in local.rglob("adapter_config.json")))


def evaluate_adapter(cfg, corpus: dict, adapter: dict) -> dict:
    """Loss and perplexity on the evaluation set for base, candidate and (if any) production adapter."""
    from pathlib import Path

    import mlflow
    from peft import PeftModel

    from adapterops.tracking import adapter_experiment, ensure_experiment
    from tasks.registry import production_version
    from tasks.train import BaseModelRef, detect_device, load_base_model, load_examples

    base_ref = BaseModelRef(adapter["base_name"], adapter["base_path"], adapter["base_revision"])
    # this may run on another machine than training (a CPU pool after a GPU worker): use this one's device,
    # and the adapter's local folder only where it exists, else the registered copy
    base, tokenizer = load_base_model(base_ref, cfg.trust_remote_code, detect_device())
    adapter_dir = adapter["adapter_dir"]
    if not Path(adapter_dir).is_dir():
        adapter_dir = _adapter_path(adapter["model_name"], adapter["version"])
    model = PeftModel.from_pretrained(base, adapter_dir, adapter_name="candidate").eval()
    examples, truncated = load_examples(Path(corpus["path"]) / "eval.parquet", tokenizer, cfg.train)
    pad = tokenizer.pad_token_id
    candidate = per_example_loss(model, examples, pad)
    reference = per_example_loss(model, examples, pad, disable_adapter=True)
    results = {"base": summarise(reference), "candidate": summarise(candidate),
               "vs_base": paired_difference(candidate, reference), "truncated": truncated}
    production = production_version(mlflow.MlflowClient(), adapter["model_name"])
    if production is not None and str(production.version) != adapter["version"]:
        model.load_adapter(_adapter_path(adapter["model_name"], str(production.version)), adapter_name="production")
        model.set_adapter("production")
        prod_losses = per_example_loss(model, examples, pad)
        results["production"] = summarise(prod_losses) | {"version": str(production.version)}
        results["vs_production"] = paired_difference(candidate, prod_losses)
    experiment = ensure_experiment(adapter_experiment(cfg.name))
    with mlflow.start_run(experiment_id=experiment, run_name=f"eval-v{adapter['version']}") as run:
        mlflow.set_tags({"stage": "evaluate", "model.name": adapter["model_name"], "model.version": adapter["version"],
                         "train.run_id": adapter["run_id"], "corpus.digest": corpus["digest"]})
        metrics = {"eval.examples": len(examples)}
        for who in ("base", "candidate", "production"):
            if who in results:
                metrics |= {f"eval.{who}.loss": results[who]["loss"], f"eval.{who}.perplexity": results[who]["perplexity"]}
        for pair in ("vs_base", "vs_production"):
            if pair in results:
                metrics |= {f"eval.{pair}.{k}": v for k, v in results[pair].items()}
        mlflow.log_metrics(metrics)
        mlflow.log_dict(results, "evaluation.json")
    with mlflow.start_run(run_id=adapter["run_id"]):
        mlflow.log_metrics({k: v for k, v in metrics.items() if k.endswith(".loss") or k.endswith(".perplexity")})
    return results | {"run_id": run.info.run_id}
