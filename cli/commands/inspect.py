"""`adapterops inspect CONFIG`: what training will learn, before it runs: the tokenizer preflight on the approved
corpus and a few rendered examples with the trained tokens marked (as Axolotl's mask preview shows them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

out = Console()


def read_records(path: Path) -> list[dict]:
    """Records of a Parquet or JSONL file: curated records, or chat JSONL lines ({"messages": [...], "tools": [...]})."""
    import pandas as pd

    from adapterops.errors import AdapterOpsError
    from tasks.train import load_records

    if path.suffix == ".parquet":
        return load_records(path)
    if path.suffix not in (".jsonl", ".json"):
        raise AdapterOpsError(f"{path}: give a .parquet file of curated records or a .jsonl file of records.")
    frame = pd.read_json(path, lines=True, dtype=False)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for i, record in enumerate(records):
        record.setdefault("id", str(i))
        for column in ("messages", "tools"):
            if isinstance(record.get(column), list):
                record[column] = json.dumps(record[column], ensure_ascii=False)
        record.setdefault("prompt", None)
    return records


def marked(pieces: list[tuple[str, bool]]) -> str:
    """Rich markup of an example: trained text in green between ⟦ ⟧, context dim; record text escaped."""
    from adapterops.escaping import terminal

    return "".join(f"[bold green]⟦{terminal(text)}⟧[/bold green]" if trained else f"[dim]{terminal(text)}[/dim]"
                   for text, trained in pieces)


def inspect(config: Path = typer.Argument(..., help="YAML config file, e.g. configs/demo.yaml."),
            data: Optional[Path] = typer.Option(None, "--data", help="Records to inspect (Parquet or JSONL); default: "
                                                                    "the train split of the newest approved corpus."),
            examples: int = typer.Option(3, "--examples", min=0, help="Rendered examples shown."),
            corpus_version: Optional[int] = typer.Option(None, "--corpus-version", help="Corpus version; default: the newest approved.")) -> None:
    """Show the preflight (examples, trained and context tokens, the longest, those over train.max_length) and
    rendered examples with the tokens the loss is on marked ⟦like this⟧."""
    from adapterops.config import load_config

    run_config = load_config(config)
    if data is None:
        from cli.common import prepare

        prepare(run_config)
    from adapterops.base_models import resolve_base_model
    from tasks.model import trained_pieces
    from tasks.train import apply_template, prepare_examples

    if data is None:
        from adapterops.errors import AdapterOpsError
        from cli.commands.train import approved_corpus

        data = Path(approved_corpus(run_config.name, corpus_version).path) / "train.parquet"
        if not data.is_file():
            raise AdapterOpsError(f"{data} is not on this machine; pass the records with --data.")
    records = read_records(data)
    tokenizer = tokenizer_of(resolve_base_model(run_config.recipe), run_config.recipe.trust_remote_code)
    template = apply_template(tokenizer, run_config.train)
    found, report = prepare_examples(records, tokenizer, run_config.train)
    out.print(f"[bold]{data}[/bold] with the tokenizer of {run_config.recipe.base_model} "
              f"({'its chat template' if template else 'train.prompt_template: no chat template'})", highlight=False)
    for line in report.lines():
        out.print(f"  {line}", highlight=False)
    for left in (report.quarantined + report.untrained)[:10]:
        out.print(f"  left out: record {left['id']}: {left['reason']}", highlight=False)
    for index, example in enumerate(found[:examples]):
        trained = sum(label != -100 for label in example.labels)
        out.print(f"\n[bold]example {index + 1}[/bold]: {len(example.input_ids)} tokens, {trained} trained", highlight=False)
        out.print(marked(trained_pieces(tokenizer, example.input_ids, example.labels)), highlight=False, soft_wrap=True)


def tokenizer_of(base, trust_remote_code: bool):
    """The base model's tokenizer alone (no weights are loaded to inspect)."""
    from transformers import AutoTokenizer

    revision = None if base.revision.startswith("sha256:") else base.revision
    tokenizer = AutoTokenizer.from_pretrained(base.path, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
