"""Data-contract validation with Great Expectations 1.x: quarantine failing rows or fail the version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapterops.errors import AdapterOpsError

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "data_contracts"


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["string", "integer", "number", "boolean"] = "string"
    required: bool = True


class ExpectationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["quarantine", "fail"] = "quarantine"


class Bounds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_rows: int = 1
    max_quarantined_fraction: float = 1.0


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: int
    description: str = ""
    scope: str = ""
    owners: list[str] = Field(min_length=1)
    schema_: dict[str, ColumnSpec] = Field(alias="schema")
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    bounds: Bounds = Field(default_factory=Bounds)


def contract_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    root = Path(os.environ.get("ADAPTEROPS_CONTRACTS", CONTRACTS_DIR))
    return root / f"{name_or_path}.yaml"


def load_contract(name_or_path: str) -> Contract:
    """Load and check a contract; each problem is one line that names the file and the field."""
    path = contract_path(name_or_path)
    if not path.is_file():
        raise AdapterOpsError(f"Contract {name_or_path!r} not found at {path}; add data_contracts/{name_or_path}.yaml or pass a path.")
    try:
        contract = Contract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise AdapterOpsError(f"{path}: field '{field}': {first['msg']}.") from None
    except yaml.YAMLError as error:
        raise AdapterOpsError(f"{path}: not valid YAML ({str(error).splitlines()[0]}).") from None
    for spec in contract.expectations:
        _build_expectation(spec, path)
    return contract


def _build_expectation(spec: ExpectationSpec, origin: Path | str):
    from great_expectations.expectations.registry import get_expectation_impl
    try:
        cls = get_expectation_impl(spec.type)
    except Exception:
        raise AdapterOpsError(f"{origin}: unknown expectation type {spec.type!r}; use a Great Expectations name such as expect_column_values_to_not_be_null.") from None
    try:
        return cls(**spec.kwargs)
    except Exception as error:
        raise AdapterOpsError(f"{origin}: expectation {spec.type}: bad arguments {spec.kwargs} ({str(error).splitlines()[0]}).") from None


def run_contract(frame: pd.DataFrame, contract: Contract) -> tuple[dict, dict[str, list[str]], list[str]]:
    """Validate `frame`; returns (GX result JSON, failing id -> reasons, failed 'fail'-severity checks)."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_or_update_pandas(f"{contract.name}_source")
    asset = source.add_dataframe_asset("records")
    batch = asset.add_batch_definition_whole_dataframe("all_records")
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=f"{contract.name}_v{contract.version}"))
    for spec in contract.expectations:
        expectation = _build_expectation(spec, contract.name)
        expectation.meta = {"severity": spec.severity}
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{contract.name}_validation", data=batch, suite=suite))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{contract.name}_checkpoint", validation_definitions=[definition],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]}))
    result = checkpoint.run(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    suite_result = next(iter(result.run_results.values()))
    failing: dict[str, list[str]] = {}
    failed_checks: list[str] = []
    for item in suite_result.results:
        if item.success:
            continue
        config = item.expectation_config
        label = f"{config.type}({config.kwargs.get('column', '')})"
        if (config.meta or {}).get("severity") == "fail":
            failed_checks.append(label)
            continue
        for row in item.result.get("unexpected_index_list") or []:
            failing.setdefault(str(row["id"]), []).append(label)
    return suite_result.to_json_dict(), failing, failed_checks


def check_bounds(contract: Contract, rows_in: int, quarantined: int) -> list[str]:
    """Dataset-level bounds that reject the version when broken."""
    problems = []
    kept = rows_in - quarantined
    if kept < contract.bounds.min_rows:
        problems.append(f"{kept} rows pass the contract, fewer than min_rows={contract.bounds.min_rows}")
    if rows_in and quarantined / rows_in > contract.bounds.max_quarantined_fraction:
        problems.append(f"{quarantined / rows_in:.1%} of rows quarantined, above max_quarantined_fraction="
                        f"{contract.bounds.max_quarantined_fraction:.0%}")
    return problems


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

def validate_file(records_path: str, contract_name: str, stage_dir) -> dict:
    """valid.parquet, the contract's quarantine rows and the full GX result under stage_dir."""
    from adapterops.storage import write_json, write_parquet
    from tasks.ingest import QUARANTINE_FIELDS

    stage_dir = Path(stage_dir)
    contract = load_contract(contract_name)
    frame = pd.read_parquet(records_path)
    result, failing, failed_checks = run_contract(frame, contract)
    write_json(result, stage_dir / "validation.json")
    bad = frame["id"].astype(str).isin(failing)
    quarantine = pd.DataFrame([
        {"id": rid, "input_file": row.input_file, "input_line": row.input_line, "stage": "contract",
         "reason": "; ".join(failing[rid]), "raw": f"{row.prompt!r} -> {row.completion!r}"[:2000]}
        for rid, row in zip(frame.loc[bad, "id"].astype(str), frame.loc[bad].itertuples())
    ], columns=list(QUARANTINE_FIELDS))
    write_parquet(quarantine, stage_dir / "contract_quarantine.parquet")
    write_parquet(frame[~bad], stage_dir / "valid.parquet")
    problems = failed_checks + check_bounds(contract, len(frame), int(bad.sum()))
    if problems:
        raise AdapterOpsError(f"Contract {contract.name} v{contract.version} rejects this corpus version: "
                              + "; ".join(problems) + f". Details: {stage_dir / 'validation.json'}.")
    return {"valid": str(stage_dir / "valid.parquet"), "quarantine": str(stage_dir / "contract_quarantine.parquet"),
            "result": str(stage_dir / "validation.json"), "input": len(frame), "kept": int((~bad).sum()),
            "quarantined": int(bad.sum()), "contract": contract.name, "contract_version": contract.version,
            "owners": contract.owners}
