"""Held-out evaluation: base, candidate and production answer every eval record; the owner's scorers judge.

Generation is greedy and batched on one base model with both adapters attached; per-example scores
feed paired bootstrap intervals (candidate − base, candidate − production), overall and per slice.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from adapterops.config import RETAIN_PREFIX, EvaluationConfig, Recipe, ScorerSpec, TrainConfig
from adapterops.errors import AdapterOpsError
from adapterops.progress import Progress
from adapterops.faults import crash_point
from adapterops.refs import AdapterRef, BaseModelRef, CorpusRef, EvaluationResult
from adapterops.tracking import adapter_experiment, ensure_experiment, resume_run
from tasks.corpus.fetch import corpus_folder
from tasks.corpus.versions import CANONICAL_FIELDS, corpus_contract, records_digest
from tasks.evaluate.agreement import judge_standings
from tasks.evaluate.judges import JudgeClient, judge_answers
from tasks.evaluate.retain import evaluate_retain
from tasks.evaluate.scorers import Scorer, build_scorers, extract_fields, score_answers, score_names
from tasks.evaluate.statistics import compare, slice_rows
from tasks.evaluate.turns import TOOLS_SLICE, TURNS_SLICE, eval_cases, has_conversations
from tasks.model.base_model import detect_device, load_base_model
from tasks.model.generate import adapter_context, generate
from tasks.model.prompts import conversation_token_ids, use_adapter_template
from tasks.model.tool_calls import syntax_of
from tasks.release.registry import production_version
from tasks.model.masks import conversation_ids
from tasks.train.sft_data import IGNORE, Example, collate

MODELS = ("base", "candidate", "production")


def per_example_loss(model, examples: list[Example], pad_id: int, batch_size: int = 16, adapter: str | None = None) -> list[float]:
    """Mean completion-token loss of each example under one adapter (None: the base model alone)."""
    import torch

    device = next(model.parameters()).device
    losses: list[float] = []
    with torch.inference_mode(), adapter_context(model, adapter):
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


def slice_labels(slices: list[str], records: pd.DataFrame, specs: list[ScorerSpec]) -> dict[str, list[str]]:
    """Per slice key, one label per example: a record column, or a field a field_match scorer extracts from the reference."""
    fields = {}
    for spec in specs:
        if spec.kind == "field_match":
            pattern = re.compile(spec.pattern)
            fields.update({name: pattern for name in pattern.groupindex})
    out = {}
    for key in slices:
        if key in records.columns:
            out[key] = records[key].fillna("(none)").astype(str).tolist()
        elif key in fields:
            out[key] = [(extract_fields(fields[key], ref) or {}).get(key) or "(unparsed)" for ref in records["completion"]]
        else:
            raise AdapterOpsError(f"Slice {key!r} is neither an eval-set column ({', '.join(records.columns)}) nor a "
                                  f"field of a field_match scorer ({', '.join(fields) or 'none'}); fix evaluation.slices.")
    return out


def _means(scores: dict[str, np.ndarray], rows: np.ndarray | None = None) -> dict[str, float]:
    """Mean per score over the scored examples (a judge leaves unscored ones NaN); NaN when none is scored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: float(np.nanmean(values[rows] if rows is not None else values)) for name, values in scores.items()}


def summarise(scores: dict[str, dict[str, np.ndarray]], directions: dict[str, bool], slices: dict[str, list[str]],
              evaluation: EvaluationConfig) -> dict:
    """Means per model and paired intervals of the candidate's improvement, overall and per slice."""
    n = len(next(iter(scores["candidate"].values())))
    everything = np.arange(n)
    has_production = "production" in scores

    def part(rows: np.ndarray) -> dict:
        out = {"means": {who: _means(scores[who], rows) for who in scores},
               "vs_base": compare(scores["candidate"], scores["base"], directions, rows, evaluation.resamples, evaluation.seed, evaluation.confidence)}
        if has_production:
            out["vs_production"] = compare(scores["candidate"], scores["production"], directions, rows, evaluation.resamples,
                                           evaluation.seed, evaluation.confidence)
        return out

    summary = {"examples": n, "directions": directions} | part(everything)
    summary.setdefault("vs_production", None)
    summary["slices"] = {}
    for key, labels in slices.items():
        for value, rows in slice_rows(labels).items():
            judged = len(rows) >= evaluation.min_slice_size
            entry = {"column": key, "value": value, "size": int(len(rows)), "judged": judged}
            entry |= part(rows) if judged else {"means": {who: _means(scores[who], rows) for who in scores}}
            summary["slices"][f"{key}={value}"] = entry
    return summary


def table_column(*parts: str) -> str:
    """A flat table column name: MLflow's artifact viewer reads a dot as a path into the row and shows nothing."""
    return "_".join(re.sub(r"[^A-Za-z0-9_]+", "_", str(p)).strip("_") for p in parts)


def example_table(records: pd.DataFrame, answers: dict[str, list[str]], scores: dict[str, dict[str, np.ndarray]],
                  notes: dict[str, dict[str, list[str]]] | None = None) -> pd.DataFrame:
    """One row per judged turn for the MLflow UI, read left to right: id, every model's scores, prompt, reference,
    (for a conversation: the turn's index, the history before it, the tools and the reference's tool calls),
    every model's answer, then each judge's rationale or unscored reason (candidate_relevance_why) and source;
    flat column names (candidate_field_triage), numbers as numbers, an unscored example empty."""
    columns: dict[str, object] = {"id": records["id"].astype(str).to_numpy()}
    for name in next(iter(scores.values()), {}):          # score by score: base, candidate, production side by side
        for who, per_score in scores.items():
            columns[table_column(who, name)] = np.round(per_score[name], 4).astype(float)
    columns |= {"prompt": records["prompt"].astype(str).to_numpy(), "reference": records["completion"].astype(str).to_numpy()}
    if "history" in records.columns:
        columns |= {"turn": records["turn"].to_numpy(), "history": records["history"].to_numpy(),
                    "tools": records["tools"].fillna("").to_numpy(), "reference_calls": records["reference_calls"].to_numpy()}
    columns |= {f"{who}_answer": list(texts) for who, texts in answers.items()}
    for name, per_model in (notes or {}).items():
        columns |= {table_column(who, name, "why"): list(texts) for who, texts in per_model.items()}
    columns["source"] = records["source"].astype(str).to_numpy()
    return pd.DataFrame(columns)


def slice_table(summary: dict) -> pd.DataFrame:
    """Per slice and score: size, each model's mean and the improvement intervals; a table artifact, not
    hundreds of metric keys (the run page would load them all as tiles)."""
    rows = []
    for key, part in summary["slices"].items():
        for name in summary["directions"]:
            row = {"slice": key, "score": name, "size": part["size"], "judged": bool(part["judged"])}
            row |= {f"{who}_mean": round(float(means[name]), 4) for who, means in part["means"].items()}
            for pair in ("vs_base", "vs_production"):
                interval = (part.get(pair) or {}).get(name)
                row |= {f"{pair}_{k}": (round(float(interval[k]), 4) if interval else None) for k in ("mean", "low", "high")}
            rows.append(row)
    return pd.DataFrame(rows)


def summary_metrics(summary: dict) -> dict[str, float]:
    """The run's top-level metrics: stable names, so two adapter versions compare on one page of the MLflow
    run-compare view; per-slice figures go to the slice table (evaluation/slices.json) instead."""
    metrics = {"eval.examples": summary["examples"]}
    for who, means in summary["means"].items():
        metrics |= {f"eval.{who}.{name}": value for name, value in means.items()}
    for pair in ("vs_base", "vs_production"):
        for name, interval in (summary.get(pair) or {}).items():
            metrics |= {f"eval.{pair}.{name}.{k}": v for k, v in interval.items()}
    for name, judge in (summary.get("judges") or {}).items():
        metrics |= {f"eval.judge.{name}.kappa": judge["kappa"], f"eval.judge.{name}.labelled": judge["scored_labels"],
                    f"eval.judge.{name}.gates": float(judge["gates"]), f"eval.judge.{name}.scored_share": judge["scored_share"],
                    f"eval.judge.{name}.unscored": sum(sum(c.values()) for c in judge["unscored"].values())}
    if calls := summary.get("judge_calls"):
        metrics["eval.judge.calls"] = calls["used"]
    if retain := summary.get("retain"):     # eval.retain.candidate.retain.chrf reads twice: eval.candidate.retain.chrf
        for who, means in retain["means"].items():
            metrics |= {f"eval.{who}.{name}": value for name, value in means.items()}
        for pair in ("vs_base", "vs_production"):
            for name, interval in (retain.get(pair) or {}).items():
                metrics |= {f"eval.{pair}.{name}.{k}": v for k, v in interval.items()}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}


# --- wrapper: verify the eval set, load base + adapters, generate, score, log to MLflow -----------

def evaluation_plan(evaluation: EvaluationConfig, contract) -> tuple[list[ScorerSpec], list[str]]:
    """The scorers and slices: the config's when it names them, else the data contract's (the owner's)."""
    specs = list(evaluation.scorers) or list(contract.evaluation.scorers)
    slices = evaluation.slices if evaluation.slices is not None else list(contract.evaluation.slices)
    return specs, slices


def verified_eval_set(corpus: CorpusRef) -> tuple[pd.DataFrame, str]:
    """The corpus version's eval records, rehashed now against the digest its manifest recorded."""
    folder = corpus_folder(corpus)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    expected = manifest["eval_digest"]
    try:
        frame = pd.read_parquet(folder / "eval.parquet")
        actual = "sha256:" + records_digest(frame)
    except Exception as error:   # unreadable bytes are changed bytes: refuse in one line
        raise AdapterOpsError(f"The eval set of corpus v{corpus.version} ({folder / 'eval.parquet'}) cannot be read "
                              f"({type(error).__name__}); its bytes changed since curation. Re-curate.") from None
    if actual != expected:
        raise AdapterOpsError(f"The eval set of corpus v{corpus.version} changed since curation (now {actual[:19]}, "
                              f"recorded {expected[:19]}, {len(frame)} records); evaluation refused. Re-curate.")
    return frame.reset_index(drop=True), expected


def _adapter_path(model_name: str, version: str) -> str:
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}"))
    return str(next(p.parent for p in local.rglob("adapter_config.json")))


def eval_dataset(corpus: CorpusRef, digest: str):
    """The eval set as an MLflow dataset, by reference: its file, digest and schema (no upload, no inference)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.schema import Schema
    from mlflow.types import ColSpec

    with warnings.catch_warnings():   # MLflow registers the local file source twice and warns it picked one
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source((Path(corpus.path) / "eval.parquet").as_uri())
    return MetaDataset(source=source, name=f"{corpus.pipeline}-eval", digest=digest.removeprefix("sha256:")[:16],
                       schema=Schema([ColSpec("string", c) for c in CANONICAL_FIELDS]))


def load_models(adapter: AdapterRef, other: str | None, local: BaseModelRef, trust_remote_code: bool = False):
    """One base model with the candidate (and the other version, if any) attached as named adapters; the tokenizer
    renders with the chat template stored with the candidate (its training rendering).

    local: this machine's base, resolved from the config; used when the adapter was trained on another machine
    from the same base name and revision.
    """
    from peft import PeftModel

    base_ref = adapter.base
    if not Path(base_ref.path).exists() and (local.name, local.revision) == (base_ref.name, base_ref.revision):
        base_ref = local
    # may run on another machine than training (a CPU pool after a GPU worker): this machine's device,
    # and the adapter's local folder only where it exists, else the registered copy
    base, tokenizer = load_base_model(base_ref, trust_remote_code, detect_device())
    candidate_dir = adapter.adapter_dir
    if not Path(candidate_dir).is_dir():
        candidate_dir = _adapter_path(adapter.model_name, adapter.version)
    model = PeftModel.from_pretrained(base, candidate_dir, adapter_name="candidate").eval()
    use_adapter_template(tokenizer, candidate_dir)
    if other is not None:
        model.load_adapter(_adapter_path(adapter.model_name, other), adapter_name="production")
    return model, tokenizer


def answer_and_score(model, tokenizer, records: pd.DataFrame, scorers: list[Scorer], specs: list[ScorerSpec],
                     who_adapter: dict[str, str | None], evaluation: EvaluationConfig,
                     train: TrainConfig) -> tuple[dict, dict, int]:
    """Each model (name -> adapter, None for the base) answers every record; (answers, scores, tokens generated).

    train: the recipe's rendering (prompt template, max length), so prompts are rendered as in training. Each row
    is a judged turn (tasks/evaluate/turns.py): the model answers it given the true history before it."""
    template = train.prompt_template
    syntax = syntax_of(getattr(tokenizer, "chat_template", None), train.tool_call_syntax)
    # tools: a JSON list, or missing (None, or NaN where pandas 3 infers a str column from JSON and None)
    prompts = [conversation_token_ids(tokenizer, json.loads(h), json.loads(t) if isinstance(t, str) and t else None, template)
               for h, t in zip(records["history"], records["tools"])]
    examples = []
    for conversation in records["_conversation"]:
        ids, labels = conversation_ids(tokenizer, conversation, template)
        examples.append(Example(ids[:train.max_length], labels[:train.max_length]))
    answers, scores, new_tokens = {}, {}, 0
    for number, (who, name) in enumerate(who_adapter.items(), start=1):
        # per model: the answers generated so far, with an ETA (Prefect's log under a run, else stderr)
        progress = Progress(f"evaluate: {who} answers (model {number} of {len(who_adapter)})", len(prompts), "examples")
        progress.update(0)
        outputs = generate(model, tokenizer, prompts, evaluation.max_new_tokens, adapter=name,
                           batch_size=evaluation.batch_size, on_batch=progress.advance)
        answers[who] = [o.text for o in outputs]
        new_tokens += sum(o.new_tokens for o in outputs)
        scores[who] = score_answers(scorers, records, answers[who], syntax)
        for spec in specs:
            if spec.kind == "loss":
                scores[who][spec.label] = np.asarray(per_example_loss(model, examples, tokenizer.pad_token_id, adapter=name))
    return answers, scores, new_tokens


def evaluate_adapter(evaluation: EvaluationConfig, recipe: Recipe, corpus: CorpusRef, adapter: AdapterRef,
                     base: BaseModelRef, against: str | None = "production") -> EvaluationResult:
    """Base vs candidate vs another version (default: whatever is in production now) on the corpus's eval set.

    recipe: how the adapter was trained (rendering, base loading); base: this machine's base model. against:
    "production", a version number, or None (the base only). Nothing moves in the registry.
    """
    import mlflow

    started = time.perf_counter()
    log = logging.getLogger("adapterops.evaluate")
    contract = corpus_contract(corpus)   # the one it was curated with, wherever its file lives
    specs, slices = evaluation_plan(evaluation, contract)
    records, eval_digest = verified_eval_set(corpus)
    records = eval_cases(records, contract.evaluation.turns)   # one row per judged assistant turn
    if records.empty:
        raise AdapterOpsError(f"The eval set of corpus v{corpus.version} has no assistant turn to judge; add records "
                              "to eval_source and re-curate.")
    if has_conversations(records):   # beside the owner's slices: by turns so far and by tool use
        slices = list(slices) + [s for s in (TURNS_SLICE, TOOLS_SLICE) if s not in slices]
    judges = [s for s in specs if s.kind == "llm_judge"]
    if judges and not evaluation.judge.base_url:
        log.warning("LLM judge scorers %s skipped: no evaluation.judge.base_url is configured.", [s.label for s in judges])
        specs, judges = [s for s in specs if s.kind != "llm_judge"], []
    scorers = build_scorers(specs, probe=(records["prompt"].iloc[0], records["completion"].iloc[0]))
    labels = slice_labels(slices, records, specs)
    directions = score_names(scorers)
    client = JudgeClient(evaluation.judge) if judges else None      # a missing key stops here, before generation
    # agreement with the owner's labels before generation: with labels, a refused key or a wrong URL shows in seconds
    standings = judge_standings(client, judges, corpus, evaluation) if judges else {}
    other = None
    if against == "production":
        current = production_version(mlflow.MlflowClient(), adapter.model_name)
        other = str(current.version) if current is not None and str(current.version) != adapter.version else None
    elif against is not None and str(against) != adapter.version:
        other = str(against)
    model, tokenizer = load_models(adapter, other, base, recipe.trust_remote_code)
    who_adapter = {"base": None, "candidate": "candidate"} | ({"production": "production"} if other else {})
    answers, scores, new_tokens = answer_and_score(model, tokenizer, records, scorers, specs, who_adapter,
                                                  evaluation, recipe.train)
    counts, notes = judge_answers(client, judges, records, answers, scores) if judges else ({}, {})
    summary = summarise(scores, directions, labels, evaluation)
    retain_table = None
    if contract.evaluation.retain is not None:   # what the adapter must not forget: beside the workload, not in it
        summary["retain"], kept, kept_answers, kept_scores = evaluate_retain(
            model, tokenizer, contract.evaluation.retain, who_adapter, evaluation, recipe.train)
        retain_table = example_table(kept.assign(source=kept["kind"]), kept_answers,
                                     {who: {k.removeprefix(RETAIN_PREFIX): v for k, v in per.items()}
                                      for who, per in kept_scores.items()})
    if judges:
        summary["judges"] = {name: standings[name] | counts[name] | {"min_scored": evaluation.judge.min_scored}
                             for name in standings}
        summary["judge_calls"] = {"used": client.calls, "budget": evaluation.judge.max_calls}
    failures = {name: n for scorer in scorers for name, n in scorer.failures.items()}
    result = {"model_name": adapter.model_name, "version": adapter.version, "production_version": other,
              "eval_digest": eval_digest, "examples": len(records), "summary": summary, "failures": failures,
              "generated_tokens": new_tokens, "seconds": round(time.perf_counter() - started, 1)}
    run_id = log_evaluation(evaluation, corpus, adapter, result, specs, slices, example_table(records, answers, scores, notes),
                            retain_table)
    return EvaluationResult(**result, run_id=run_id)


def log_evaluation(evaluation: EvaluationConfig, corpus: CorpusRef, adapter: AdapterRef, result: dict, specs: list[ScorerSpec], slices: list[str],
                   table: pd.DataFrame, retain_table: pd.DataFrame | None = None) -> str:
    """The eval run: params, the eval set as a dataset input, the per-example table, metrics linked to the model."""
    import mlflow

    experiment = ensure_experiment(adapter_experiment(corpus.pipeline))
    against = f"v{result['production_version']}" if result["production_version"] else "base"
    metrics = summary_metrics(result["summary"])
    with mlflow.start_run(experiment_id=experiment, run_name=f"eval-v{adapter.version}-vs-{against}") as run:
        mlflow.set_tags({"stage": "evaluate", "model.name": adapter.model_name, "model.version": adapter.version,
                         "train.run_id": adapter.run_id, "corpus.digest": corpus.digest,
                         "corpus.version": str(corpus.version), "eval.digest": result["eval_digest"],
                         "eval.size": str(result["examples"]), "eval.source": str(Path(corpus.path) / "eval.parquet"),
                         "eval.against": against})
        mlflow.log_params({"eval.scorers": json.dumps([s.model_dump(exclude_none=True, exclude_defaults=True)
                                                        | {"kind": s.kind} for s in specs])[:6000],
                           "eval.slices": ",".join(slices) or "-", "eval.max_new_tokens": evaluation.max_new_tokens,
                           "eval.decoding": "greedy", "eval.batch_size": evaluation.batch_size,
                           "eval.resamples": evaluation.resamples, "eval.confidence": evaluation.confidence,
                           "eval.seed": evaluation.seed, "eval.min_slice_size": evaluation.min_slice_size})
        if result["summary"].get("judges"):    # the endpoint and model, never the key
            judge = evaluation.judge
            mlflow.log_params({"eval.judge.base_url": judge.base_url, "eval.judge.model": judge.model,
                               "eval.judge.max_calls": judge.max_calls, "eval.judge.min_kappa": judge.min_kappa,
                               "eval.judge.timeout_seconds": judge.timeout_seconds, "eval.judge.retries": judge.retries})
        mlflow.log_input(eval_dataset(corpus, result["eval_digest"]), context="evaluation")
        mlflow.log_table(table, "evaluation/examples.json")
        if result["summary"]["slices"]:
            mlflow.log_table(slice_table(result["summary"]), "evaluation/slices.json")
        if retain_table is not None:
            retain = result["summary"]["retain"]
            mlflow.set_tags({"eval.retain.source": retain["source"], "eval.retain.digest": retain["digest"],
                             "eval.retain.size": str(retain["examples"])})
            mlflow.log_table(retain_table, "evaluation/retain.json")
        crash_point("evaluate-logging")
        mlflow.log_metrics(metrics | {f"eval.failures.{k}": v for k, v in result["failures"].items()},
                           model_id=adapter.model_id)
        mlflow.log_dict(result, "evaluation/summary.json")
    with resume_run(adapter.run_id):   # the candidate's own scores beside its training curve
        mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith(("eval.base.", "eval.candidate."))})
    return run.info.run_id
