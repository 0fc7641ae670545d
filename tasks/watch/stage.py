"""The watch over one window of recorded traffic for a pipeline's adapter at an alias (production): novelty
against its approved corpus, reference-free scores and feedback against the release-time evaluation, the alerts
that tripped, the conversations to label next; one MLflow run per window in the `NAME/watch` experiment."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from adapterops.config import Config
from adapterops.errors import AdapterOpsError
from adapterops.refs import CorpusRef, WatchResult
from adapterops.storage import write_json, write_parquet, write_text
from adapterops.tracking import adapter_experiment, ensure_experiment
from adapterops.workspace import resolve_workspace
from tasks.corpus import corpus_contract, corpus_ref
from tasks.corpus.fetch import corpus_folder
from tasks.dedup import load_sketches, save_sketches
from tasks.dedup.clusters import Sketches
from tasks.serve.follower import alias_version
from tasks.serve.recording import traffic_folder
from tasks.watch.novelty import customer_sketches, novelty, novelty_params
from tasks.watch.quality import compared, corpus_scores, feedback_rates, length_range, production_scores
from tasks.watch.report import alerts, message, report_markdown
from tasks.watch.traffic import window_feedback, window_records


def watch_experiment(pipeline: str) -> str:
    return f"{pipeline}/watch"


# --- wrapper: the registry, the corpus version's files, the traffic store, MLflow -------------------------

def corpus_sketches(corpus: CorpusRef, config: Config) -> tuple[Sketches, Sketches, pd.DataFrame, pd.DataFrame]:
    """(train, held-out) customer-side sketches of the corpus version, computed once per version and settings and
    kept under ADAPTEROPS_HOME/watch/, with the version's train and held-out records."""
    folder = corpus_folder(corpus)
    train = pd.read_parquet(folder / "train.parquet")
    heldout = pd.read_parquet(folder / "heldout.parquet")
    params = novelty_params(config.watch, config.dedup.num_perm, config.dedup.seed)
    cache = (resolve_workspace().root / "watch" / corpus.pipeline /
             f"v{corpus.version}-{corpus.digest.removeprefix('sha256:')[:16]}-n{params.ngram}-p{params.num_perm}")
    sketches = []
    for name, records in (("train", train), ("heldout", heldout)):
        try:
            sketches.append(load_sketches(cache / name, mmap=True))
        except AdapterOpsError:        # not stored yet: sketch once and keep
            made = customer_sketches(records, params)
            save_sketches(made, cache / name)
            sketches.append(made)
    return sketches[0], sketches[1], train, heldout


def release_figures(model_name: str, version: str, pipeline: str) -> dict[str, float]:
    """The candidate's means of the evaluation that released this version (eval.candidate.*), latest run first."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(adapter_experiment(pipeline))
    if experiment is None:
        return {}
    runs = mlflow.MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.stage = 'evaluate' and tags.`model.name` = '{model_name}' "
                                                  f"and tags.`model.version` = '{version}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return {}
    prefix = "eval.candidate."
    return {k[len(prefix):]: v for k, v in runs[0].data.metrics.items() if k.startswith(prefix)}


def label_candidates(traffic: pd.DataFrame, novel: np.ndarray, lowest: np.ndarray, feedback: pd.DataFrame,
                     limit: int) -> pd.DataFrame:
    """The conversations to label next: badly rated first, then novel, then low-scored; one row each with why,
    in the corpus's record shape (the corrected answer, where feedback gave one, as the completion)."""
    bad = dict(zip(feedback["response_id"], feedback["corrected_answer"])) if len(feedback) else {}
    rated_bad = set(feedback.loc[feedback["verdict"] == "bad", "response_id"]) if len(feedback) else set()
    reasons = []
    for k, rid in enumerate(traffic["id"]):
        why = [w for w, hit in (("rated bad", rid in rated_bad), ("novel", bool(novel[k])),
                                ("low score", lowest[k] < 1)) if hit]
        reasons.append(", ".join(why))
    picked = traffic.assign(why=reasons, rank=[0 if "rated bad" in r else 1 if "novel" in r else 2 for r in reasons])
    picked = picked[picked["why"] != ""].sort_values(["rank", "time"]).head(limit)
    corrected = picked["id"].map(lambda rid: bad.get(rid))
    return pd.DataFrame({"id": "prod-" + picked["id"].astype(str), "response_id": picked["id"].astype(str),
                         "source": "production", "timestamp": picked["time"], "prompt": picked["prompt"],
                         "completion": picked["completion"], "corrected_answer": corrected,
                         "messages": picked["messages"], "tools": picked["tools"], "why": picked["why"]})


def chat_lines(candidates: pd.DataFrame, source: str = "production") -> list[dict]:
    """The candidates as OpenAI chat JSONL records, an input curation reads (`sources:`): the production
    conversation, its last answer replaced by the caller's corrected answer where feedback gave one."""
    lines = []
    for row in candidates.to_dict("records"):
        stored = row["messages"]
        messages = json.loads(stored) if isinstance(stored, str) else \
            [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]
        messages = [{k: v for k, v in m.items() if k != "weight" and v is not None} for m in messages]
        if isinstance(row["corrected_answer"], str) and row["corrected_answer"]:
            messages[-1] = {"role": "assistant", "content": row["corrected_answer"]}
        line = {"id": row["id"], "source": source, "timestamp": row["timestamp"], "messages": messages}
        if isinstance(row["tools"], str):
            line["tools"] = json.loads(row["tools"])
        lines.append(line)
    return lines


def watch_window(config: Config, now: datetime | None = None, store: Path | None = None,
                 run_dir: Path | None = None) -> WatchResult:
    """Watch the last watch.window_days of recorded traffic of config.release.model_name at watch.alias."""
    import mlflow

    settings = config.watch
    end = now or datetime.now(timezone.utc)
    start = end - timedelta(days=settings.window_days)
    model_name = config.release.model_name
    client = mlflow.MlflowClient()
    version = alias_version(client, model_name, settings.alias)
    if version is None:
        raise AdapterOpsError(f"{model_name} has no version at alias {settings.alias!r}; release one first "
                              f"(`adapterops run`), or watch another alias (watch.alias).")
    digest = client.get_model_version(model_name, version).tags.get("corpus.digest")
    if not digest:
        raise AdapterOpsError(f"{model_name} v{version} names no corpus digest (tag corpus.digest), so there is no "
                              "corpus to compare its traffic with; register it through `adapterops train`.")
    corpus = corpus_ref(config.name, digest)
    train_sketches, heldout_sketches, train, heldout = corpus_sketches(corpus, config)
    store = Path(store or traffic_folder(config.serve.record))
    traffic = window_records(store, model_name, settings.alias, version, start, end)
    feedback = window_feedback(store, traffic["id"] if len(traffic) else [], start, end)
    folder = Path(run_dir or resolve_workspace().runs_dir / "watch" / config.name / f"{end:%Y%m%dT%H%M%SZ}")
    folder.mkdir(parents=True, exist_ok=True)

    found = novelty(traffic, train_sketches, heldout_sketches, settings) if len(traffic) else \
        {"novel": np.zeros(0, bool), "novel_share": 0.0, "baseline_share": 0.0, "clusters": []}
    specs = list(config.evaluation.scorers) or list(corpus_contract(corpus).evaluation.scorers)
    bounds = length_range(train["completion"])
    scores, lowest = production_scores(traffic, specs, bounds) if len(traffic) else ({}, np.ones(0))
    rows = compared(scores, release_figures(model_name, version, config.name), corpus_scores(heldout, bounds))
    figures = {"conversations": int(len(traffic)), "novel_share": found["novel_share"],
               "baseline_share": found["baseline_share"], "scores": rows,
               "feedback": feedback_rates(feedback, len(traffic))}
    tripped = alerts(figures, settings)
    candidates = label_candidates(traffic, found["novel"], lowest, feedback, settings.label_limit) if len(traffic) \
        else pd.DataFrame()
    if len(candidates):
        write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chat_lines(candidates, settings.candidate_source)),
                   folder / "candidates.jsonl")
        write_parquet(candidates, folder / "candidates.parquet")
    result = {"pipeline": config.name, "model_name": model_name, "version": version, "alias": settings.alias,
              "corpus_version": corpus.version, "corpus_digest": corpus.digest, "window_start": start.isoformat(),
              "window_end": end.isoformat(), "novel": int(found["novel"].sum()), "clusters": found["clusters"],
              "alerts": tripped, "message": message(model_name, version, tripped),
              "label_candidates": int(len(candidates)), "folder": str(folder)} | figures
    report = report_markdown(result)
    write_text(report, folder / "report.md")
    write_json(result, folder / "summary.json")
    run_id = log_watch(result, settings.model_dump(), folder)
    return WatchResult(**result, run_id=run_id)


def log_watch(result: dict, settings: dict, folder: Path) -> str:
    """The window's MLflow run: its settings as params, its figures as metrics (charts over windows), the report."""
    import mlflow

    experiment = ensure_experiment(watch_experiment(result["pipeline"]))
    metrics = {"watch.conversations": result["conversations"], "watch.novel_share": result["novel_share"],
               "watch.baseline_novel_share": result["baseline_share"], "watch.alerts": len(result["alerts"]),
               "watch.feedback.count": result["feedback"]["count"],
               "watch.feedback.bad_share": result["feedback"]["bad_share"],
               "watch.label_candidates": result["label_candidates"]}
    for row in result["scores"]:
        metrics[f"watch.score.{row['score']}"] = row["production"]
        if row["release"] is not None:
            metrics[f"watch.release.{row['score']}"] = row["release"]
    when = datetime.fromisoformat(result["window_end"])
    with mlflow.start_run(experiment_id=experiment,
                          run_name=f"watch-{result['model_name']}-v{result['version']}-{when:%Y-%m-%d}") as run:
        mlflow.set_tags({"stage": "watch", "model.name": result["model_name"], "model.version": result["version"],
                         "corpus.digest": result["corpus_digest"], "corpus.version": str(result["corpus_version"]),
                         "watch.window_start": result["window_start"], "watch.window_end": result["window_end"],
                         "watch.alert": result["message"][:5000] or "none"})
        mlflow.log_params({f"watch.{k}": v for k, v in settings.items()})
        mlflow.log_metrics(metrics, step=int(when.timestamp() // 86400))    # the day: charts read left to right
        mlflow.log_artifact(str(folder / "report.md"), "watch")
        mlflow.log_artifact(str(folder / "summary.json"), "watch")
        if (folder / "candidates.jsonl").is_file():
            mlflow.log_artifact(str(folder / "candidates.jsonl"), "watch")
    return run.info.run_id

