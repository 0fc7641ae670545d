"""`adapterops keys api create|list|revoke` and the address rule of `adapterops serve`, as a user runs them."""

import json
import stat

import pytest
from typer.testing import CliRunner

from adapterops.errors import AdapterOpsError
from cli.main import app
from tasks.serve import KeyRing


def test_a_key_is_shown_once_stored_as_a_digest_and_revoked_by_name(tmp_path):
    path = tmp_path / "keys" / "api-keys.json"
    made = CliRunner().invoke(app, ["keys", "api", "create", "--name", "billing-app", "--model", "billing-adapter",
                                    "--file", str(path)])
    assert made.exit_code == 0, made.output
    key = next(line for line in made.output.splitlines() if line.startswith("ao-"))
    stored = path.read_text()
    assert key not in stored and json.loads(stored)["keys"][0]["models"] == ["billing-adapter"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    ring = KeyRing(None, path)
    holder = ring.holder(f"Bearer {key}")
    assert holder.name == "billing-app" and holder.allows("billing-adapter") and not holder.allows("other")
    assert ring.holder("Bearer ao-wrong") is None and ring.holder(key) is None   # no scheme: refused

    listed = CliRunner().invoke(app, ["keys", "api", "list", "--file", str(path)])
    assert "billing-app" in listed.output and key not in listed.output
    again = CliRunner().invoke(app, ["keys", "api", "create", "--name", "billing-app", "--file", str(path)])
    assert again.exit_code != 0 and "revoke it first" in str(again.exception or again.output)
    assert CliRunner().invoke(app, ["keys", "api", "revoke", "--name", "billing-app", "--file", str(path)]).exit_code == 0
    assert ring.holder(f"Bearer {key}") is None and ring.enabled      # an emptied file still guards the server


def test_keys_from_the_environment_may_be_limited_to_models():
    ring = KeyRing("k1, k2=alpha|beta", None)
    assert ring.enabled and ring.holder("Bearer k1").allows("anything")
    assert ring.holder("bearer k2").models == {"alpha", "beta"} and ring.holder("Bearer k3") is None
    assert not KeyRing("", None).enabled


def test_serve_refuses_another_address_without_keys_unless_told(tmp_path, monkeypatch):
    monkeypatch.delenv("ADAPTEROPS_API_KEYS", raising=False)
    config = tmp_path / "serve.yaml"
    config.write_text(f"serve:\n  api_keys_file: {tmp_path / 'none.json'}\n")
    result = CliRunner().invoke(app, ["serve", "--name", "x", "--host", "0.0.0.0", "--config", str(config)])
    assert isinstance(result.exception, AdapterOpsError) and "--allow-no-keys" in str(result.exception)
    told = CliRunner().invoke(app, ["serve", "--name", "nothing-registered", "--host", "0.0.0.0", "--allow-no-keys",
                                    "--config", str(config)])
    assert "warning: listening on 0.0.0.0 with no API key" in told.output
    assert isinstance(told.exception, AdapterOpsError) and "neither a registered model nor a pipeline" in str(told.exception)
