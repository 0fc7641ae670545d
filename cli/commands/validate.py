"""`adapterops validate INPUT --contract NAME`: ingest → PII → one contract, standalone, outside a flow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from adapterops.errors import AdapterOpsError

out = Console()


def validate(inputs: list[str] = typer.Argument(..., help="Input files, globs or folders (JSON Lines, CSV, TSV, Parquet, Hugging Face save_to_disk folders)."),
             contract: str = typer.Option(..., "--contract", help="Contract name (data_contracts/NAME.yaml) or path."),
             output: Path = typer.Option(Path("validated"), "--out", help="Folder for the passing rows, quarantine and result."),
             config: Optional[Path] = typer.Option(None, "--config", help="Run config whose `columns` and `inputs` map the input.")) -> None:
    """Run one contract standalone: writes passing.parquet, quarantine.parquet, validation.json and Data Docs."""
    from adapterops.config import Columns, InputsConfig, load_config

    from adapterops.escaping import terminal
    from tasks.records import breakdown_lines

    loaded = load_config(config) if config else None
    columns = loaded.columns if loaded else Columns()
    counts, problem = validate_inputs(inputs, contract, columns, output, loaded.inputs if loaded else InputsConfig())
    out.print(f"{counts['input']} rows in: {counts['passing']} pass, {counts['quarantined']} quarantined "
              f"({', '.join(f'{k} {v}' for k, v in counts['by_stage'].items())}). Written to {output}/: passing.parquet, "
              f"quarantine.parquet, validation.json, validation.md, pii.json, data_docs/index.html", highlight=False, soft_wrap=True)
    for line in breakdown_lines(counts["by_reason"], output / "quarantine.parquet"):
        out.print(terminal(line), highlight=False, soft_wrap=True)
    if problem:
        raise problem


def validate_inputs(inputs: list[str], contract: str, columns, output: Path,
                    formats=None) -> tuple[dict, AdapterOpsError | None]:
    """ingest → PII → contract on `inputs`, results under `output`; the contract's rejection is returned, not raised."""
    import pandas as pd

    from adapterops.storage import write_parquet
    from tasks.curate import ingest_files, pii_file, validate_file
    from tasks.records import load_contract

    stages = output / "stages"
    shutil.rmtree(stages, ignore_errors=True)
    loaded = load_contract(contract)
    ingested = ingest_files(inputs, columns, stages, formats)
    pii = pii_file(ingested.records, loaded, stages)
    problem = None
    try:
        validate_file(pii.records, loaded, stages, [ingested.quarantine, pii.quarantine])
    except AdapterOpsError as error:
        if not (stages / "valid.parquet").is_file():
            raise                               # no result to write: the contract could not run at all
        problem = error
    parts = {"ingest": ingested.quarantine, "pii": pii.quarantine, "contract": stages / "contract_quarantine.parquet"}
    quarantine = pd.read_parquet(stages / "quarantined.parquet")     # every stage's, in this order
    passing = pd.read_parquet(stages / "valid.parquet")
    write_parquet(quarantine, output / "quarantine.parquet")
    write_parquet(passing, output / "passing.parquet")
    for name in ("validation.json", "validation.md", "pii.json"):
        shutil.copyfile(stages / name, output / name)
    shutil.rmtree(output / "data_docs", ignore_errors=True)
    shutil.copytree(stages / "data_docs", output / "data_docs")
    counts = {"input": ingested.input, "passing": len(passing), "quarantined": len(quarantine),
              "by_stage": {k: int((quarantine["stage"] == k).sum()) for k in parts},
              "by_reason": json.loads((stages / "validation.json").read_text(encoding="utf-8"))["quarantine_by_reason"]}
    if counts["input"] != counts["passing"] + counts["quarantined"]:
        raise AdapterOpsError(f"Record accounting does not add up: {counts}. Please report this.")
    return counts, problem
