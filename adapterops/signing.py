"""Ed25519 keys and DSSE envelopes: a decision is a signed statement, not an editable tag.

Owners' private keys and the workspace key live under ADAPTEROPS_HOME/keys/ (mode 0600); public
keys are written in contracts as `ed25519:BASE64` (the raw 32 key bytes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.workspace import resolve_workspace

PAYLOAD_TYPE = "application/vnd.adapterops.decision+json"
WORKSPACE_KEY = "workspace"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def keys_dir() -> Path:
    return resolve_workspace().root / "keys"


def owner_key_path(name: str) -> Path:
    """Where NAME's private key is kept by default; names are plain (no path separators)."""
    if not _NAME.match(name) or name == WORKSPACE_KEY:
        raise AdapterOpsError(f"{name!r} cannot name a key: use letters, digits, '.', '_', '-' or '@' (and not 'workspace').")
    return keys_dir() / f"{name}.key"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def public_key_line(public_key) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return "ed25519:" + base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def parse_public_key(line: str, origin: str):
    """The Ed25519 public key of a contract line `ed25519:BASE64`; a malformed one is one clear line."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    kind, _, data = str(line).partition(":")
    try:
        if kind != "ed25519":
            raise ValueError
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data, validate=True))
    except ValueError:
        raise AdapterOpsError(f"{origin}: public key {line!r} is not `ed25519:BASE64`; paste the line "
                              "`adapterops keys init` printed.") from None


def keyid(public_key) -> str:
    return "sha256:" + hashlib.sha256(public_key_line(public_key).encode("ascii")).hexdigest()[:32]


def _write_private(path: Path, key) -> None:
    """Write a new PEM key with mode 0600, atomically and only if none is there (two first uses agree)."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(staging, path)   # fails if the key exists: never overwrite a key
    finally:
        staging.unlink()


def create_key(path: Path):
    """A new Ed25519 key pair at `path` (refused if a key is there); returns the private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    _write_private(path, key)
    return key


def init_key(path: Path):
    """(private key, True) for a key made now at path, or (the existing key, False): a key is never overwritten."""
    try:
        return create_key(path), True
    except FileExistsError:
        return load_private_key(path), False


def load_private_key(path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AdapterOpsError(f"{path} holds no Ed25519 private key; make one with `adapterops keys init`.")
    return key


def owner_private_key(name: str, key_file: Path | None = None):
    """NAME's private key (from key_file or the workspace's keys/); missing is one line saying what to run."""
    path = Path(key_file) if key_file else owner_key_path(name)
    if not path.is_file():
        raise AdapterOpsError(f"No private key for {name!r} at {path}: run `adapterops keys init --as {name}` and add "
                              "the public-key line it prints to the contract's owners.")
    return load_private_key(path)


def workspace_key():
    """The workspace's own key (signs the automatic policy and Prefect-form decisions); created on first use."""
    path = keys_dir() / f"{WORKSPACE_KEY}.key"
    if not path.is_file():
        try:
            create_key(path)
        except FileExistsError:
            pass   # another process created it first; use theirs
    return load_private_key(path)


def keyed_hash(data: bytes, purpose: str) -> str:
    """HMAC-SHA256 of data under the workspace key, for provenance only this workspace can write."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    raw = workspace_key().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    secret = hashlib.sha256(b"adapterops-mac-key\0" + raw).digest()   # never the signing key itself
    return "hmac-sha256:" + hmac.new(secret, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def sign_statement(statement: dict, private_key) -> dict:
    """A DSSE envelope of the statement, signed over its pre-authentication encoding."""
    payload = json.dumps(statement, sort_keys=True, ensure_ascii=False).encode("utf-8")
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": keyid(private_key.public_key()), "sig": base64.b64encode(signature).decode("ascii")}]}


def open_envelope(envelope: dict, public_key, where: str) -> dict:
    """The statement of an envelope whose signature verifies under public_key; otherwise one clear line."""
    from cryptography.exceptions import InvalidSignature

    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        if envelope["payloadType"] != PAYLOAD_TYPE:
            raise ValueError("payload type")
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]
                      if s.get("keyid") == keyid(public_key)]
        for signature in signatures:
            try:
                public_key.verify(signature, pae(PAYLOAD_TYPE, payload))
            except InvalidSignature:
                continue
            return json.loads(payload)
    except (KeyError, TypeError, ValueError):
        raise AdapterOpsError(f"{where}: the decision file is not a readable signed envelope; it was edited or "
                              "damaged. Ask an owner to decide a freshly curated version.") from None
    raise AdapterOpsError(f"{where}: the decision is not signed by the key the contract expects; it was forged or "
                          "edited, or signed by someone else. Ask an owner to decide a freshly curated version.")


def statement_of(envelope: dict) -> dict:
    """The unverified statement, for display and for choosing the key to verify it with."""
    try:
        return json.loads(base64.b64decode(envelope["payload"], validate=True))
    except (KeyError, TypeError, ValueError):
        return {}
