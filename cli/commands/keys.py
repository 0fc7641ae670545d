"""`adapterops keys init --as NAME`: an owner's signing key pair and the public-key line for the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cli.common import setup

app = typer.Typer(no_args_is_help=True, help="Signing keys: an owner's decisions are signed with their key.")
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
