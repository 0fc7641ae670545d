"""`adapterops fit-check VERSION --name NAME`: is a fine-tune the right tool for this corpus version? Volatile facts
in its replies and near-duplicate prompts whose answers disagree, with a plain verdict and examples."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown

from cli.common import setup

out = Console()


def fit_check(version: int = typer.Argument(..., help="Corpus version number (`adapterops corpus list`)."),
              name: str = typer.Option("demo", "--name", help="Pipeline name (the config's `name`)."),
              config: Path = typer.Option(None, help="YAML config whose `fit_check` section sets the limits."),
              as_json: bool = typer.Option(False, "--json", help="Print the figures and examples as JSON."),
              fail: bool = typer.Option(False, "--fail", help="Exit 1 when the verdict is that it does not fit.")) -> None:
    """Share of replies stating volatile facts (prices, dates, versions, SKUs, order or account numbers, URLs) the
    conversation did not give them, and of near-duplicate prompts with disagreeing answers (also against the last
    approved version)."""
    from adapterops.config import load_config, parse_config

    settings = (load_config(config) if config else parse_config({})).fit_check
    setup()
    from tasks.corpus import check_fit, fit_lines, get_version, last_approved, version_records

    run = get_version(name, version)
    previous = last_approved(name, other_than=run)
    result = check_fit(version_records(run), settings, version_records(previous) if previous is not None else None)
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        out.print(Markdown(f"## {name} corpus v{version}\n\n" + "\n".join(fit_lines(result))))
    if fail and not result["fits"]:
        raise typer.Exit(1)
