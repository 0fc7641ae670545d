"""The watch flow against a production adapter and its demo corpus version, over traffic written by the serve
recorder's own writer: in-distribution traffic raises no alert; traffic about topics the corpus never saw is
flagged novel, its largest cluster is that topic, and the notification fires with the message people read."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pandas as pd
import prefect.events
import pytest

from adapterops.config import parse_config
from adapterops.demo_data import HOUSE_POLICY, generate_conversations
from tasks.serve.recording import (
    FEEDBACK,
    FEEDBACK_COLUMNS,
    RECORD_COLUMNS,
    RECORDS,
    feedback_row,
    record_rows,
    write_part,
)
from tests.flows.test_notify import automation_for, render
from tests.serve.adapters import register_adapter

pytestmark = pytest.mark.slow       # a curation and a registered adapter first (about a minute here)

PIPELINE, MODEL = "watched", "watched-adapter"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
THERMOSTAT = ["my smart thermostat {n} keeps rebooting and the heating schedule resets every {day} night"]
CORRECTED = ("Triage: feature | priority: low | team: Product\nReply: Hi Ana, thank you for contacting us. Thermostats "
             "are not ours to support: please contact the maker of your heating. Best regards, the Acme Support team.")
DAYS = ["Monday", "Tuesday", "Friday", "Sunday"]
VAT = ["how do I file the quarterly VAT return for my bakery, form {n} of {day}",
       "which VAT rate applies to takeaway coffee at my bakery, receipt {n} of {day}"]


def config(store) -> dict:
    return {"name": PIPELINE, "approval": "auto", "demo_records": 400, "release": {"model_name": MODEL},
            "serve": {"record": {"folder": str(store)}}}


@pytest.fixture(scope="module")
def production(prefect_harness, tiny_model_dir, tmp_path_factory):
    """The demo corpus curated, an adapter at production naming its digest, and its release-time evaluation."""
    from flows.curate import curate
    from adapterops.tracking import adapter_experiment, ensure_experiment

    corpus = curate(parse_config(config(tmp_path_factory.mktemp("unused"))))
    version = register_adapter(MODEL, 51, tiny_model_dir, "production")
    mlflow.MlflowClient().set_model_version_tag(MODEL, version, "corpus.digest", corpus.digest)
    with mlflow.start_run(experiment_id=ensure_experiment(adapter_experiment(PIPELINE)), run_name="eval"):
        mlflow.set_tags({"stage": "evaluate", "model.name": MODEL, "model.version": version})
        mlflow.log_metrics({"eval.candidate.format": 0.99, "eval.candidate.pii_leak": 0.0})
    return corpus, version


def pending(k: int, version: str, messages: list[dict], answer: str, now: datetime = NOW, model: str = MODEL) -> dict:
    when = now - timedelta(hours=1 + k)
    return {"id": f"chatcmpl-{k:05d}", "time": when.isoformat(), "endpoint": "chat", "model": model,
            "model_name": model, "version": version, "alias": "production", "key": "support-app", "stream": False,
            "latency_seconds": 0.2, "prompt_tokens": 40, "completion_tokens": 30, "messages": messages,
            "tools": None, "choices": [{"index": 0, "prompt": 0, "content": answer, "calls": [],
                                        "finish_reason": "stop"}]}


def demo_traffic(count: int, seed: int) -> list[tuple[list[dict], str]]:
    """Conversations like the corpus's (another seed), answered as the corpus answers them."""
    out = []
    for record in generate_conversations(count, seed, id_prefix="P"):
        messages = [m for m in record["messages"]]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        out.append((messages[:last], messages[last]["content"]))
    return out


def novel_traffic(count: int, templates: list[str], seed: int) -> list[tuple[list[dict], str]]:
    rng = random.Random(seed)
    return [([{"role": "system", "content": HOUSE_POLICY},
              {"role": "user", "content": f"Hello, {rng.choice(templates).format(n=rng.randint(10, 99), day=rng.choice(DAYS))}. "
                                          f"Thanks, {rng.choice(['Ana', 'Bo', 'Cy'])}"}],
             "I am not sure how to help with that.") for _ in range(count)]


def write_traffic(store, version: str, conversations, now: datetime = NOW, model: str = MODEL) -> None:
    rows = [row for k, (messages, answer) in enumerate(conversations)
            for row in record_rows(pending(k, version, messages, answer, now, model))]
    for part in range(0, len(rows), 50):      # several files, as the recorder rotates them
        write_part(rows[part:part + 50], store / RECORDS, RECORD_COLUMNS, part)


@pytest.fixture()
def emitted(monkeypatch):
    events = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: events.append(kwargs))
    return events


def run_watch(store):
    from flows.watch import watch

    return watch(parse_config(config(store)), until=NOW)


def test_in_distribution_traffic_raises_no_alert(production, tmp_path, emitted):
    _, version = production
    write_traffic(tmp_path, version, demo_traffic(150, 404))
    result = run_watch(tmp_path)
    assert result.conversations == 150 and result.version == version
    assert result.novel_share <= result.baseline_share + 0.05, result
    assert result.alerts == [] and emitted == []
    scores = {row["score"]: row for row in result.scores}
    assert scores["format"]["production"] == 1.0 and scores["format"]["release"] == 0.99
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["watch.conversations"] == 150 and run.data.tags["watch.alert"] == "none"
    assert mlflow.get_experiment(run.info.experiment_id).name == f"{PIPELINE}/watch"


def test_traffic_about_topics_absent_from_the_corpus_is_flagged_clustered_and_notified(production, tmp_path,
                                                                                       emitted):
    _, version = production
    traffic = demo_traffic(100, 405) + novel_traffic(45, THERMOSTAT, 1) + novel_traffic(15, VAT, 2)
    write_traffic(tmp_path, version, traffic)
    rated = {"id": "fb-1", "response_id": "chatcmpl-00100", "time": (NOW - timedelta(minutes=5)).isoformat(),
             "key": "support-app", "verdict": "bad", "corrected_answer": CORRECTED, "note": "wrong queue"}
    write_part([feedback_row(rated)], tmp_path / FEEDBACK, FEEDBACK_COLUMNS, 1)
    result = run_watch(tmp_path)
    assert result.conversations == 160 and result.novel >= 60 and result.feedback["bad"] == 1
    # the 60 off-topic conversations, and about the held-out set's own share of the 100 others
    assert 60 / 160 <= result.novel_share <= (60 + 100 * (result.baseline_share + 0.05)) / 160, result
    largest = result.clusters[0]
    assert largest["size"] >= 40 and "thermostat" in largest["words"]
    assert all("thermostat" in example["text"] for example in largest["examples"])
    assert any("bakery" in example["text"] for c in result.clusters[1:] for example in c["examples"])
    assert any("unlike the corpus" in a for a in result.alerts)
    assert any(a.startswith("format 0.99 → 0.6") for a in result.alerts), result.alerts
    assert result.message.startswith(f"{MODEL} v{version}: ")
    assert "% of this window's traffic is unlike the corpus (baseline " in result.message
    assert len(emitted) == 1
    action = automation_for(emitted[0]).actions[0]
    assert render(action.subject, emitted[0]) == f"Watch: {result.message}"
    assert result.run_id in render(action.body, emitted[0])
    why = pd.read_parquet(f"{result.folder}/candidates.parquet")
    assert why.iloc[0]["why"].startswith("rated bad") and why.iloc[0]["corrected_answer"] == CORRECTED
    assert (why["why"].str.contains("novel")).sum() >= 60

    # the flywheel: the candidates are a source of the next corpus version, through ingest, PII, dedup and the
    # contract (the off-topic answers fail its format and are quarantined or removed as near-duplicates of one
    # another; the caller's correction is kept)
    from flows.curate import curate

    candidates = f"{result.folder}/candidates.jsonl"
    assert all(json.loads(line)["source"] == "production" for line in open(candidates))
    # the demo contract allows the sources email, chat and web-form: recorded chats come in as `chat`
    chats = parse_config(config(tmp_path) | {"watch": {"candidate_source": "chat"}})
    from flows.watch import watch

    result = watch(chats, until=NOW)
    candidates = f"{result.folder}/candidates.jsonl"
    following = curate(chats.model_copy(update={"sources": ["demo:train", candidates]}))
    assert following.version == 2 and following.new
    kept = pd.concat([pd.read_parquet(f"{following.path}/{s}.parquet") for s in ("train", "heldout")])
    kept = kept.set_index("id")
    assert kept.loc["prod-chatcmpl-00100", "completion"] == CORRECTED
    quarantine = pd.read_parquet(f"{following.path}/quarantine.parquet")
    off_topic = quarantine["id"].str.startswith("prod-", na=False)    # the others were near-duplicates of these
    assert off_topic.sum() >= 10 and quarantine.loc[off_topic, "stage"].eq("contract").all()


def test_the_command_prints_the_figures_and_says_no_threshold_tripped(production, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from cli.main import app

    _, version = production
    write_traffic(tmp_path / "store", version, demo_traffic(40, 406), now=datetime.now(timezone.utc))
    (tmp_path / "watch.yaml").write_text(yaml.safe_dump(config(tmp_path / "store")))
    result = CliRunner().invoke(app, ["watch", PIPELINE, "--config", str(tmp_path / "watch.yaml")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"{MODEL} v{version}: 40 conversations" in result.output and "novel share" in result.output
    assert "no threshold tripped" in result.output

    missing = CliRunner().invoke(app, ["watch", "nobody", "--config", str(tmp_path / "watch.yaml")])
    assert missing.exit_code != 0


def test_the_labeling_round_of_production_conversations_reaches_the_next_version(production, tmp_path):
    """watch → candidates → corpus v(N+1) → `label export --only candidates` → annotated → v(N+2) via labels."""
    from typer.testing import CliRunner

    from cli.main import app
    from flows.curate import curate
    from tests.flows.test_label import annotate

    _, version = production
    write_traffic(tmp_path, version, demo_traffic(30, 407) + novel_traffic(12, VAT, 3))
    chats = parse_config(config(tmp_path) | {"watch": {"candidate_source": "chat"}})
    from flows.watch import watch

    result = watch(chats, until=NOW)
    candidates = f"{result.folder}/candidates.jsonl"
    with_candidates = chats.model_copy(update={"sources": ["demo:train", candidates]})
    lines = [json.loads(line) for line in open(candidates)]     # answered in the contract's format this time
    for line in lines:
        line["messages"][-1] = {"role": "assistant", "content": CORRECTED.replace("Thermostats", "VAT returns")
                                + f" Ref {line['id']}."}
    Path(candidates).write_text("".join(json.dumps(line) + "\n" for line in lines))
    following = curate(with_candidates)
    exported = CliRunner().invoke(app, ["label", "export", str(following.version), "--name", PIPELINE, "--split",
                                        "all", "--only", candidates, "--out", str(tmp_path / "tasks.json")])
    assert exported.exit_code == 0, exported.output
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert tasks and all(t["data"]["record_id"].startswith("prod-") for t in tasks)
    fixed = tasks[0]["data"]["completion"].replace("VAT returns are not ours", "Tax questions are not ours")
    annotate(tasks, [("correct", fixed)])
    (tmp_path / "annotated.json").write_text(json.dumps(tasks))
    labelled = curate(with_candidates.model_copy(update={"labels": [str(tmp_path / "annotated.json")]}))
    assert labelled.version == following.version + 1
    kept = pd.concat([pd.read_parquet(f"{labelled.path}/{s}.parquet") for s in ("train", "heldout")]).set_index("id")
    assert kept.loc[tasks[0]["data"]["record_id"], "completion"] == fixed
