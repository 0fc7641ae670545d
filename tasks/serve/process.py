"""`adapterops serve` as a subprocess on a free loopback port: what staging, the tests and the benchmark talk to."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from adapterops.children import child_options
from adapterops.errors import AdapterOpsError

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keys_enabled(env: dict, config_path: Path | None) -> bool:
    """Whether the server will require API keys (from the environment or its keys file)."""
    from tasks.serve.api_keys import KeyRing, default_keys_file

    configured = ""
    if config_path:
        import yaml

        configured = ((yaml.safe_load(Path(config_path).read_text()) or {}).get("serve") or {}).get("api_keys_file") or ""
    return KeyRing(env.get("ADAPTEROPS_API_KEYS"), Path(configured) if configured else default_keys_file()).enabled


class ServerProcess:
    """A running `adapterops serve`; stop() ends it (also on leaving a `with` block)."""

    def __init__(self, model_names: list[str], aliases: list[str], poll_seconds: float, log_path: Path,
                 config_path: Path | None = None, env: dict | None = None, stop_timeout: float = 40):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-c", "from cli.main import main; main()", "serve", "--port", str(self.port), "--host", "127.0.0.1",
                   "--poll-seconds", str(poll_seconds)]
        command += [a for n in model_names for a in ("--name", n)] + [a for a in aliases for a in ("--alias", a)]
        if config_path:
            command += ["--config", str(config_path)]
        self.stop_timeout = stop_timeout
        env = os.environ | (env or {})
        self.headers: dict[str, str] = {}
        if _keys_enabled(env, config_path):   # keys guard this server: its caller gets a key of its own
            key = "ao-process-" + secrets.token_urlsafe(24)
            env["ADAPTEROPS_API_KEYS"] = ",".join(filter(None, [env.get("ADAPTEROPS_API_KEYS"), key]))
            self.headers = {"Authorization": f"Bearer {key}"}
        env = env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        # dies with this process even on kill -9 of it (adapterops/children.py)
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
                                        **child_options(env))

    def wait_healthy(self, timeout: float) -> dict:
        """GET /health until it answers; an error with the server's last output if it exits or the time runs out."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AdapterOpsError(f"The server exited with code {self.process.returncode}: {self.tail()}")
            try:
                response = httpx.get(f"{self.url}/health", timeout=2, headers=self.headers)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AdapterOpsError(f"The server did not answer /health within {timeout:.0f} s: {self.tail()}")

    def tail(self, lines: int = 5) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)   # SIGTERM: requests in flight finish first
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
