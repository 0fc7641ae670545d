"""`adapterops validate INPUT --contract NAME`: ingest → PII → one contract, standalone, outside a flow."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from adapterops.errors import AdapterOpsError

out = Console()


def validate(inputs: list[str] = typer.Argument(..., help="Input files, globs or folders (JSONL, CSV, Parquet, HF dataset)."),
             contract: str = typer.Option(..., "--contract", help="Contract name (data_contracts/NAME.yaml) or path."),
             output: Path = typer.Option(Path("validated"), "--out", help="Folder for the passing rows, quarantine and result."),
             config: Optional[Path] = typer.Option(None, "--config", help="Run config whose `columns` and `inputs` map the input.")) -> None:
    """Run one contract standalone: writes passing.parquet, quarantine.parquet, validation.json and Data Docs."""
    from adapterops.config import Columns, InputsConfig, load_config

    loaded = load_config(config) if config else None
    columns = loaded.columns if loaded else Columns()
    counts, problem = validate_inputs(inputs, contract, columns, output, loaded.inputs if loaded else InputsConfig())
    out.print(f"{counts['input']} rows in: {counts['passing']} pass, {counts['quarantined']} quarantined "
              f"({', '.join(f'{k} {v}' for k, v in counts['by_stage'].items())}). Written to {output}/: passing.parquet, "
              f"quarantine.parquet, validation.json, validation.md, pii.json, data_docs/index.html", highlight=False, soft_wrap=True)
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
        validate_file(pii.records, loaded, stages)
    except AdapterOpsError as error:
        if not (stages / "valid.parquet").is_file():
            raise                               # no result to write: the contract could not run at all
        problem = error
    parts = {"ingest": ingested.quarantine, "pii": pii.quarantine, "contract": stages / "contract_quarantine.parquet"}
    quarantine = pd.concat([pd.read_parquet(p) for p in parts.values()], ignore_index=True)
    passing = pd.read_parquet(stages / "valid.parquet")
    write_parquet(quarantine, output / "quarantine.parquet")
    write_parquet(passing, output / "passing.parquet")
    for name in ("validation.json", "validation.md", "pii.json"):
        shutil.copyfile(stages / name, output / name)
    shutil.rmtree(output / "data_docs", ignore_errors=True)
    shutil.copytree(stages / "data_docs", output / "data_docs")
    counts = {"input": ingested.input, "passing": len(passing), "quarantined": len(quarantine),
              "by_stage": {k: int((quarantine["stage"] == k).sum()) for k in parts}}
    if counts["input"] != counts["passing"] + counts["quarantined"]:
        raise AdapterOpsError(f"Record accounting does not add up: {counts}. Please report this.")
    return counts, problem
