"""`adapterops keys init --as NAME`: an owner's signing key pair; `adapterops keys api create|revoke|list`: API keys of `serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cli.common import setup

app = typer.Typer(no_args_is_help=True, help="Signing keys (an owner's decisions are signed with their key) and the API keys of `adapterops serve` (keys api).")
out = Console()


@app.command()
def init(name: str = typer.Option(..., "--as", help="The owner's name, as listed in the contract."),
         key_file: Optional[Path] = typer.Option(None, "--key-file", help="Where to keep the private key; "
                                                 "default: ADAPTEROPS_HOME/keys/NAME.key.")) -> None:
    """Make NAME's Ed25519 key pair (private key mode 0600) and print the owner entry for the contract.

    An existing key is kept, never overwritten: its public key is printed again.
    """
    setup()
    from adapterops.signing import init_key, owner_key_path, public_key_line

    path = Path(key_file) if key_file else owner_key_path(name)
    key, made = init_key(path)
    state = "made" if made else "already there, kept"
    out.print(f"private key for {name}: {path} ({state}; keep it to yourself)", markup=False, highlight=False,
              soft_wrap=True)
    out.print("add this entry to the contract's owners (replacing the plain name):", markup=False, highlight=False)
    out.print(f'  - {{name: {name}, public_key: "{public_key_line(key.public_key())}"}}', markup=False, highlight=False,
              soft_wrap=True)


api = typer.Typer(no_args_is_help=True, help="API keys of `adapterops serve`: made, listed and revoked here; "
                                              "only their SHA-256 digests are stored.")
app.add_typer(api, name="api")


def _keys_file(path: Optional[Path]) -> Path:
    from adapterops.config import ServeConfig
    from tasks.serve import default_keys_file

    configured = ServeConfig().api_keys_file
    return Path(path) if path else (Path(configured) if configured else default_keys_file())


KEYS_FILE = typer.Option(None, "--file", help="The keys file (default: serve.api_keys_file, else "
                                              "ADAPTEROPS_HOME/keys/api-keys.json).")


@api.command("create")
def api_create(name: str = typer.Option(..., "--name", help="Who the key is for (an application); shown in the access log."),
               model: list[str] = typer.Option([], "--model", help="Registered model the key may call; repeat for "
                                                                   "several (default: every served model)."),
               key_file: Optional[Path] = KEYS_FILE) -> None:
    """Make an API key and print it once; the server stores and compares only its digest."""
    setup()
    from tasks.serve import create_key

    path = _keys_file(key_file)
    key = create_key(path, name, model)
    scope = ", ".join(model) if model else "every served model"
    out.print(f"API key for {name} ({scope}); shown once, keep it secret:", markup=False, highlight=False)
    print(key)
    out.print(f"stored as a digest in {path}; `adapterops serve` reads it (no restart needed)", markup=False,
              highlight=False, soft_wrap=True)


@api.command("revoke")
def api_revoke(name: str = typer.Option(..., "--name", help="The key's name, as given to `create`."),
               key_file: Optional[Path] = KEYS_FILE) -> None:
    """Revoke a key: a running server refuses it from its next request."""
    setup()
    from tasks.serve import revoke_key

    count = revoke_key(_keys_file(key_file), name)
    out.print(f"revoked {count} key(s) named {name}", markup=False, highlight=False)


@api.command("list")
def api_list(key_file: Optional[Path] = KEYS_FILE) -> None:
    """The keys in the file: name, models, created, revoked (never the keys)."""
    setup()
    from rich.table import Table

    from adapterops.escaping import terminal
    from tasks.serve import read_keys_file

    table = Table(title=f"API keys in {_keys_file(key_file)}")
    for column in ("name", "models", "created", "revoked"):
        table.add_column(column)
    for entry in read_keys_file(_keys_file(key_file)):
        table.add_row(*map(terminal, (str(entry.get("name", "")), ", ".join(entry.get("models") or []) or "all",
                                      str(entry.get("created", "")), str(entry.get("revoked") or ""))))
    out.print(table)
