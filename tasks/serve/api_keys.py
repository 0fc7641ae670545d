"""API keys of `adapterops serve`: from ADAPTEROPS_API_KEYS (comma-separated, `KEY` or `KEY=model-a|model-b`)
or a file of hashed keys (`adapterops keys api create|revoke|list`), each optionally limited to named models.

Only SHA-256 digests of keys are stored; a key is shown once, when it is made, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from adapterops.errors import AdapterOpsError

ENV = "ADAPTEROPS_API_KEYS"
PREFIX = "ao-"


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid key belongs to (never the key itself) and which registered models it may call."""
    name: str
    models: frozenset[str] = frozenset()    # empty: every served model

    def allows(self, model_name: str) -> bool:
        return not self.models or model_name in self.models


def digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def default_keys_file() -> Path:
    from adapterops.workspace import resolve_workspace

    return resolve_workspace().root / "keys" / "api-keys.json"


def read_keys_file(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text()).get("keys", [])
    except (ValueError, AttributeError) as error:
        raise AdapterOpsError(f"The API keys file {path} is not valid JSON ({error}); restore it or remove it and "
                              "make keys again with `adapterops keys api create`.") from None
    return [e for e in entries if isinstance(e, dict) and "sha256" in e]


def write_keys_file(path: Path, entries: list[dict]) -> None:
    """Atomically, mode 0600 in a 0700 folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"keys": entries}, handle, indent=2)
    os.replace(temporary, path)


def create_key(path: Path, name: str, models: list[str]) -> str:
    """A new key for `name` (limited to `models` when given) added to the file; the key, to show once."""
    entries = read_keys_file(path)
    if any(e.get("name") == name and not e.get("revoked") for e in entries):
        raise AdapterOpsError(f"A key named {name!r} exists in {path}; revoke it first or pick another name.")
    key = PREFIX + secrets.token_urlsafe(32)
    entries.append({"name": name, "sha256": digest(key), "models": sorted(set(models)),
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "revoked": None})
    write_keys_file(path, entries)
    return key


def revoke_key(path: Path, name: str) -> int:
    """Revoke every live key named `name`; how many were revoked."""
    entries = read_keys_file(path)
    now, count = datetime.now(timezone.utc).isoformat(timespec="seconds"), 0
    for entry in entries:
        if entry.get("name") == name and not entry.get("revoked"):
            entry["revoked"], count = now, count + 1
    if not count:
        raise AdapterOpsError(f"No live key named {name!r} in {path}; `adapterops keys api list` shows them.")
    write_keys_file(path, entries)
    return count


def parse_env_keys(value: str) -> dict[str, KeyHolder]:
    """{digest: holder} of ADAPTEROPS_API_KEYS: `KEY` or `KEY=model-a|model-b`, comma-separated."""
    held = {}
    for number, item in enumerate(filter(None, (part.strip() for part in value.split(","))), start=1):
        key, _, models = item.partition("=")
        held[digest(key)] = KeyHolder(f"env-key-{number}", frozenset(filter(None, models.split("|"))))
    return held


class KeyRing:
    """The keys a server accepts: from the environment and the keys file, the file re-read when it changes
    (a revoked key stops working without a restart)."""

    def __init__(self, env_value: str | None, path: Path | None):
        self.env = parse_env_keys(env_value or "")
        self.path = path
        self._stamp: tuple | None = None
        self._file: dict[str, KeyHolder] = {}
        self._refresh()

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self._file = {e["sha256"]: KeyHolder(str(e.get("name", "key")), frozenset(e.get("models") or []))
                      for e in read_keys_file(self.path) if not e.get("revoked")} if stamp else {}

    @property
    def enabled(self) -> bool:
        self._refresh()
        return bool(self.env or self._file or (self.path is not None and self._stamp is not None))

    def holder(self, authorization: str | None) -> KeyHolder | None:
        """The holder of the bearer key in an Authorization header, or None when it is missing or unknown."""
        self._refresh()
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        presented = digest(key.strip())
        for known, holder in (self.env | self._file).items():
            if hmac.compare_digest(known, presented):
                return holder
        return None
