"""The weekly deployment on a real `prefect server start` with a process worker: suspend at approval, restart the
worker while waiting, approve from the CLI, train once (the on-approval trigger), and the webhook told each step."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LANE = {"name": "lane", "approval": "owner", "demo_records": 150, "train": {"max_steps": 2, "batch_size": 2},
        "release": {"model_name": "lane-adapter"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook:
    """A loopback HTTP receiver that keeps every JSON body posted to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def subjects(self) -> list[str]:
        return [r["subject"] for r in self.received]


class Processes:
    """Processes started in their own session, each stopped by its pid (and its group) at the end, even on failure."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.started = env, logs, {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("ab")
        self.started[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)
        return self.started[name]

    def stop(self, name: str) -> None:
        process = self.started.pop(name)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)     # the group this process leads: a worker's flow-run children too
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=20)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for name in list(self.started):
            self.stop(name)


def run(env: dict, *args: str, timeout: int = 180) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def adapterops(env: dict, *args: str) -> str:
    return run(env, sys.executable, "-c", "from cli.main import main; main()", *args)


def wait_until(check, what: str, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def lane_deployments(path: Path, config: dict | None = None,
                     entrypoints: tuple[str, ...] = ("flows/retrain.py:retrain", "flows/approved.py:train_approved")) -> Path:
    """deployments/prefect.yaml with a lane's small config (default: this lane's), and only the deployments it runs."""
    declared = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    kept = []
    for deployment in declared["deployments"]:
        if deployment["entrypoint"] in entrypoints:
            if "parameters" in deployment:
                deployment["parameters"]["config"] = config or LANE
            for schedule in deployment.get("schedules", []):
                schedule["active"] = False      # the lane starts the run itself
            kept.append(deployment)
    declared["deployments"] = kept
    path.write_text(yaml.safe_dump(declared))
    return path


@pytest.fixture()
def lane(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))} | {
        "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
        "ADAPTEROPS_HOME": str(home), "ADAPTEROPS_DIR": str(ROOT), "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow/mlflow.db", "GX_ANALYTICS_ENABLED": "false",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    (home / "mlflow").mkdir(parents=True)
    env["ADAPTEROPS_CONTRACTS"] = str(owner_signs(env, tmp_path / "contracts"))
    processes = Processes(env, tmp_path)
    try:
        processes.start("server", str(BIN / "prefect"), "server", "start")
        wait_until(lambda: _healthy(env["PREFECT_API_URL"]), "the Prefect server", 180)
        yield env, processes, tmp_path
    finally:
        processes.stop_all()
        for log in sorted(tmp_path.glob("*.log")):     # shown by pytest when the test failed
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


def owner_signs(env: dict, folder: Path) -> Path:
    """dana.k's key made in the lane's workspace and a copy of the demo contract listing it: decisions are signed."""
    import re

    from tasks.records.contract import CONTRACTS_DIR

    printed = adapterops(env, "keys", "init", "--as", "dana.k")
    key = re.search(r'public_key: "(ed25519:[^"]+)"', printed).group(1)
    data = yaml.safe_load((CONTRACTS_DIR / "support_tickets.yaml").read_text(encoding="utf-8"))
    data["owners"] = [{"name": "dana.k", "public_key": key, "form": True}, "policy:auto"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "support_tickets.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def flow_runs(env: dict, flow_name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def state_of(env: dict, flow_name: str) -> list[str]:
    return [r.state.name for r in flow_runs(env, flow_name) if r.state]


def test_the_weekly_run_waits_suspended_survives_a_worker_restart_and_trains_once(lane):
    env, processes, tmp_path = lane
    webhook = Webhook()
    prefect = str(BIN / "prefect")
    adapterops(env, "notify", "setup", "--webhook", webhook.url)
    run(env, prefect, "work-pool", "create", "cpu", "--type", "process")
    run(env, prefect, "--no-prompt", "deploy", "--prefect-file", str(lane_deployments(tmp_path / "prefect.yaml")),
        "--all")
    processes.start("worker", prefect, "worker", "start", "--pool", "cpu", "--limit", "2")
    run(env, prefect, "deployment", "run", "retrain/weekly")

    wait_until(lambda: "Suspended" in state_of(env, "retrain"), "the weekly run to suspend at approval", 300)
    weekly = flow_runs(env, "retrain")[0]
    assert "corpus:lane:v1" in weekly.tags
    wait_until(lambda: any("waits for an owner" in s for s in webhook.subjects()), "the 'waiting' notification", 60)
    waiting = next(r for r in webhook.received if "waits for an owner" in r["subject"])
    assert f"/runs/flow-run/{weekly.id}" in waiting["body"] and "corpus approve 1 --name lane" in waiting["body"]

    processes.stop("worker")                     # nothing runs while the owner thinks: a restart loses nothing
    processes.start("worker", prefect, "worker", "start", "--pool", "cpu", "--limit", "2")
    out = adapterops(env, "corpus", "approve", "1", "--name", "lane", "--as", "dana.k", "--note", "lane", "--yes")
    assert "Resumed the flow runs waiting on v1" in out

    wait_until(lambda: state_of(env, "retrain") == ["Completed"], "the weekly run to complete", 300)
    wait_until(lambda: state_of(env, "train-approved") == ["Completed"], "the on-approval run to train", 400)
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    versions = mlflow.MlflowClient().search_model_versions("name='lane-adapter'")
    assert len(versions) == 1, "the corpus was trained more than once"
    wait_until(lambda: any(s.startswith("lane-adapter v1 ") for s in webhook.subjects()), "the release notification", 60)
    release = next(r for r in webhook.received if r["subject"].startswith("lane-adapter v1 "))
    assert release["subject"].endswith(("promoted to production", "held at candidate")) and "Why: " in release["body"]
