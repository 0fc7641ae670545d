"""`adapterops export`: a registered adapter as a folder vLLM, TGI and LoRAX load, with the command for each."""

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from cli.common import setup

out = Console()


def export(name: str = typer.Option(..., "--name", help="Registered model (a config's release.model_name)."),
           alias: str = typer.Option("production", help="Alias whose version is exported."),
           version: str = typer.Option(None, help="Export this version instead of the alias's."),
           out_dir: Path = typer.Option(..., "--out", help="New or empty folder to write into.")) -> None:
    """Write adapter_config.json (base id + revision), adapter_model.safetensors and README.txt (serve commands)."""
    setup()
    from tasks.release import export_adapter

    done = export_adapter(name, None if version else alias, version, out_dir)
    out.print(f"{escape(name)} v{done['version']} (base {escape(done['base_name'])} {done['base_revision']}) → "
              f"{escape(done['folder'])}; README.txt there has the vLLM, TGI and LoRAX commands.", highlight=False)
