"""A team's labeling round against a real Label Studio 1.23.2 (make test-labeling): push a version's records, two
annotators label them through the API (one agreement, one disagreement, a correction that breaks the contract,
an unlabeled task), pull, check, curate under the unanimous policy; the dispute, agreement and counts are asserted."""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from adapterops.config import parse_config
from cli.main import app

pytestmark = pytest.mark.labelstudio

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("LABEL_STUDIO_VENV") or ROOT / ".venv-labelstudio")
LANE = {"name": "lslane", "approval": "auto", "demo_records": 150}
OWNER = "owner@example.com"
ANN, BOB = "ann@example.com", "bob@example.com"
STARTUP_SECONDS = 300      # /health answers after about a minute on two busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioServer:
    """`label-studio start` on a loopback port with a fresh data dir, stopped by its pid (and group) at the end."""

    def __init__(self, data_dir: Path):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.token = secrets.token_hex(20)
        self.log = data_dir / "label-studio.log"
        env = os.environ | {"LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LATEST_VERSION_CHECK": "false",
                            "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
                            "OMP_NUM_THREADS": "1"}
        command = [str(VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
                   "--port", self.url.rsplit(":", 1)[1], "--data-dir", str(data_dir / "data"), "--username", OWNER,
                   "--password", secrets.token_hex(8), "--user-token", self.token]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
                                            start_new_session=True)

    def wait(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                    if b"UP" in answer.read():
                        return
            except OSError:
                time.sleep(2)
        tail = self.log.read_text(errors="replace")[-600:]
        pytest.skip(f"Label Studio did not start (exit {self.process.poll()}, {STARTUP_SECONDS} s): {tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def sign_up(self, email: str) -> str:
        """An annotator signs up through the web form (as a person would) and reads their own API token."""
        with httpx.Client(base_url=self.url, follow_redirects=True, timeout=60) as session:
            page = session.get("/user/signup/")
            csrf = session.cookies.get("csrftoken") or re.search(r'csrfmiddlewaretoken" value="([^"]+)', page.text)[1]
            session.post("/user/signup/", data={"email": email, "password": secrets.token_hex(8),
                                                "csrfmiddlewaretoken": csrf}, headers={"Referer": f"{self.url}/user/signup/"})
            return session.get("/api/current-user/token").raise_for_status().json()["token"]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if not (VENV / "bin" / "label-studio").is_file():
        pytest.skip(f"Label Studio 1.23.2 is not installed in {VENV}: run `make test-labeling`, which installs it.")
    server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        server.stop()


def said(result) -> str:
    """The command's output as one line (Rich wraps it at the terminal width)."""
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def annotate(client, task_id: int, verdict: str, text: str | None = None, note: str | None = None) -> None:
    result = [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}}]
    for name, value in (("corrected_completion", text), ("note", note)):
        if value:
            result.append({"from_name": name, "to_name": "completion", "type": "textarea", "value": {"text": [value]}})
    client.annotations.create(id=task_id, result=result)


def test_a_labeling_round_with_two_annotators_through_label_studio(label_studio, prefect_harness, tmp_path,
                                                                   monkeypatch):
    from flows.curate import curate
    from tasks.approve.review import version_review
    from tasks.label.label_studio import connect, parse_project, push_tasks
    from tasks.label.labeling import LABEL_STUDIO_INTERFACE

    first = curate(parse_config(LANE))          # while Label Studio starts
    label_studio.wait()
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    runner = CliRunner()

    push = ["label", "push", "1", "--name", "lslane", "--project", "lslane round 1", "--limit", "6"]
    pushed = said(runner.invoke(app, push))
    assert "(created)" in pushed and "6 tasks added, 0 already there" in pushed
    again = said(runner.invoke(app, push))
    assert "(updated)" in again and "0 tasks added, 6 already there" in again

    owner = connect(label_studio.url, label_studio.token)
    project = next(p for p in owner.projects.list() if p.title == "lslane round 1")
    tasks = sorted(owner.tasks.list(project=project.id), key=lambda t: t.id)
    changed = {"data": tasks[0].data | {"completion": "Triage: billing | priority: high | edited",
                                        "record_digest": "sha256:changed"}}
    ref = parse_project(str(project.id))
    assert push_tasks(owner, label_studio.url, ref, [changed], LABEL_STUDIO_INTERFACE)["added"] == 1
    owner.tasks.delete(id=max(t.id for t in owner.tasks.list(project=project.id)))   # keep the round at six tasks

    ann, bob = (connect(label_studio.url, label_studio.sign_up(who)) for who in (ANN, BOB))
    ids = [t.id for t in tasks]
    records = [t.data["record_id"] for t in tasks]
    fixed = re.sub(r"^Triage: \w+", "Triage: security", tasks[4].data["completion"])
    annotate(ann, ids[0], "accept")
    annotate(bob, ids[0], "accept")
    annotate(ann, ids[1], "accept")
    annotate(bob, ids[1], "reject", note="not a support ticket")          # the disagreement
    annotate(ann, ids[2], "correct", text="see ticket")                    # breaks the contract's completion format
    annotate(ann, ids[3], "reject", note="duplicate of an older ticket")
    annotate(bob, ids[3], "reject")
    annotate(ann, ids[4], "correct", text=fixed)
    annotate(bob, ids[4], "correct", text=fixed)                            # ids[5]: nobody labels it

    pulled = tmp_path / "round1.json"
    result = said(runner.invoke(app, ["label", "pull", "--name", "lslane", "--project",
                                      f"{label_studio.url}/projects/{project.id}/data", "--out", str(pulled)]))
    assert "6 tasks (1 unlabeled), 9 annotations" in result
    exported = json.loads(pulled.read_text())
    assert {a["completed_by"]["email"] for t in exported for a in t["annotations"]} == {ANN, BOB}
    assert label_studio.token not in pulled.read_text()

    checked = said(runner.invoke(app, ["label", "check", str(pulled), "--name", "lslane", "--policy", "unanimous"]))
    assert "1 disputed tasks" in checked and records[1] in checked
    assert "correction_rejected" in checked                                # the contract, run on corrections up front

    second = curate(parse_config(LANE | {"labels": [str(pulled)], "labeling": {"policy": "unanimous"}}))
    assert second.new and second.version == 2
    folder = Path(second.path)
    labels = pd.read_parquet(folder / "labels.parquet")
    assert labels["outcome"].value_counts().to_dict() == {"applied": 3, "correction_rejected": 1, "agreed": 3,
                                                          "disputed": 2, "unlabeled": 1}
    by_record = labels.groupby("record_id")["outcome"].apply(sorted).to_dict()
    assert by_record[records[1]] == ["disputed", "disputed"] and by_record[records[5]] == ["unlabeled"]
    assert by_record[records[2]] == ["correction_rejected"]
    assert set(labels["annotator"].dropna()) == {ANN, BOB}

    kept = pd.concat([pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "heldout")]).set_index("id")
    quarantine = pd.read_parquet(folder / "quarantine.parquet").set_index("id")
    assert records[1] in kept.index                                        # disputed: not applied
    assert kept.loc[records[4], "completion"] == fixed and records[3] not in kept.index
    assert quarantine.loc[records[3], "stage"] == "label" and records[2] not in kept.index
    refused = quarantine.loc[records[2]]                                   # the contract refused the correction:
    assert refused["stage"] == "label" and refused["reason"].startswith("correction_rejected")
    assert ANN in refused["reason"]                                        # ... named with its annotator
    assert second.counts["quarantined"] == first.counts["quarantined"] + 2

    agreement = json.loads((folder / "labels_agreement.json").read_text())
    overall = agreement["rounds"][0]["overall"]
    assert overall["method"] == "cohen_kappa" and overall["value"] == pytest.approx(0.6364, abs=1e-4)
    assert [d["record_id"] for d in agreement["disputed"]] == [records[1]]
    assert agreement["rounds"][0]["annotators"] == {ANN: {"accept": 2, "correct": 2, "reject": 1},
                                                    BOB: {"accept": 1, "reject": 2, "correct": 1}}
    run = mlflow.get_run(second.run_id)
    assert run.data.metrics["labels.round1.cohen_kappa"] == pytest.approx(0.6364, abs=1e-4)
    assert run.data.metrics["labels.disputed_tasks"] == 1 and run.data.params["labels.policy"] == "unanimous"
    review = version_review("lslane", run, "http://mlflow", "http://prefect", 3)
    assert "Disputed" in review and "cohen kappa 0.636" in review and "not a support ticket" in review


def test_a_watch_round_goes_through_label_studio_into_the_next_version(label_studio, prefect_harness,
                                                                       tiny_model_dir, tmp_path, monkeypatch):
    """The flywheel end to end: production traffic watched, its candidates curated into v2, only those pushed to
    Label Studio (`--only`), corrected there, pulled, and the correction in v3."""
    import mlflow

    from flows.curate import curate
    from flows.watch import watch
    from tests.flows.test_watch import CORRECTED, NOW, VAT, demo_traffic, novel_traffic, write_traffic
    from tests.serve.adapters import register_adapter

    name, model = "lswatch", "lswatch-adapter"
    settings = {"name": name, "approval": "auto", "demo_records": 150, "release": {"model_name": model},
                "serve": {"record": {"folder": str(tmp_path / "store")}}, "watch": {"candidate_source": "chat"}}
    corpus = curate(parse_config(settings))
    version = register_adapter(model, 61, tiny_model_dir, "production")
    mlflow.MlflowClient().set_model_version_tag(model, version, "corpus.digest", corpus.digest)
    label_studio.wait()
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)

    write_traffic(tmp_path / "store", version, demo_traffic(20, 408) + novel_traffic(8, VAT, 4), model=model)
    watched = watch(parse_config(settings), until=NOW)
    candidates = tmp_path / "candidates.jsonl"
    lines = [json.loads(line) for line in open(f"{watched.folder}/candidates.jsonl")]
    for line in lines:                  # answered in the contract's format, each its own
        line["messages"][-1] = {"role": "assistant", "content": CORRECTED.replace("Thermostats", "VAT returns")
                                + f" Ref {line['id']}."}
    candidates.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with_candidates = settings | {"sources": ["demo:train", str(candidates)]}
    following = curate(parse_config(with_candidates))
    runner = CliRunner()
    pushed = said(runner.invoke(app, ["label", "push", str(following.version), "--name", name, "--project",
                                      "lswatch round", "--split", "all", "--only", str(candidates)]))
    assert "(created)" in pushed

    owner = connect_owner(label_studio)
    project = next(p for p in owner.projects.list() if p.title == "lswatch round")
    tasks = sorted(owner.tasks.list(project=project.id), key=lambda t: t.id)
    assert tasks and all(t.data["record_id"].startswith("prod-") for t in tasks)
    fixed = tasks[0].data["completion"].replace("VAT returns are not ours", "Tax questions are not ours")
    annotate(owner, tasks[0].id, "correct", fixed)

    pulled = tmp_path / "round.json"
    said(runner.invoke(app, ["label", "pull", "--name", name, "--project", str(project.id), "--out", str(pulled)]))
    labelled = curate(parse_config(with_candidates | {"labels": [str(pulled)]}))
    assert labelled.version == following.version + 1
    kept = pd.concat([pd.read_parquet(f"{labelled.path}/{s}.parquet") for s in ("train", "heldout")]).set_index("id")
    assert kept.loc[tasks[0].data["record_id"], "completion"] == fixed


def connect_owner(label_studio):
    from tasks.label.label_studio import connect

    return connect(label_studio.url, label_studio.token)
