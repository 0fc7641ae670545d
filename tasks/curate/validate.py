"""Data-contract validation with Great Expectations 1.x: quarantine failing rows or fail the version."""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from adapterops.errors import AdapterOpsError
from adapterops.escaping import html_text, md_cell, md_code, md_text
from adapterops.refs import ValidationResult
from adapterops.storage import space_for, write_json, write_parquet, write_text
from tasks.records.contract import DERIVED_COLUMNS, Contract, ExpectationSpec, build_expectation, derived_values
from tasks.records.conversation import conversation_of
from tasks.records.quarantine import QUARANTINE_FIELDS, breakdown_markdown, quarantine_row, reason_breakdown

TYPE_PATTERNS = {"integer": r"^[+-]?\d+$", "number": r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$",
                 "boolean": r"^(?i:true|false)$"}


def schema_expectations(contract: Contract) -> list[tuple[str, ExpectationSpec]]:
    """The schema as GX expectations (required → not null, typed → pattern), each with its quarantine reason."""
    specs = []
    for column, spec in contract.schema_.items():
        if spec.required:
            specs.append((f"missing_required: {column}",
                          ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": column})))
        if spec.type in TYPE_PATTERNS:
            specs.append((f"wrong_type: {column} expected {spec.type}", ExpectationSpec(
                type="expect_column_values_to_match_regex", kwargs={"column": column, "regex": TYPE_PATTERNS[spec.type]})))
    return specs


def with_derived_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame plus the conversation's derived columns (system prompt, first user message, last assistant
    message, turns, messages, tools used) that expectations may address; the corpus files never hold them."""
    records = ({k: None if isinstance(v, float) and v != v else v for k, v in r.items()}
               for r in frame[[c for c in ("prompt", "completion", "messages", "tools") if c in frame]].to_dict("records"))
    derived = pd.DataFrame([derived_values(conversation_of(record)) for record in records],
                           columns=list(DERIVED_COLUMNS), index=frame.index)
    derived = derived.astype({"turns": "int64", "messages_count": "int64"}) if len(derived) else derived
    return pd.concat([frame, derived[[c for c in DERIVED_COLUMNS if c not in frame.columns]]], axis=1)


@dataclass
class ContractRun:
    result: dict                                                    # the GX validation result, as JSON
    failing: dict[str, list[str]] = field(default_factory=dict)     # record id -> quarantine reasons
    problems: list[str] = field(default_factory=list)               # 'fail'-severity checks that failed
    checks: list[dict] = field(default_factory=list)                # one summary row per expectation
    expected: dict[str, str] = field(default_factory=dict)          # check label -> what it expects, in words


def _label(config) -> str:
    return f"{config.type}({config.kwargs.get('column', '')})"


def _expects(config) -> str:
    """What an expectation asks for, from its settings (min_value=20, max_value=4000), for the reason breakdown."""
    settings = {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id") and v is not None}
    words = config.type.removeprefix("expect_column_").removeprefix("expect_").replace("_", " ")
    return words + (" (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" if settings else "")


def run_contract(frame: pd.DataFrame, contract: Contract, docs_dir: Path | None = None) -> ContractRun:
    """Validate `frame` (it needs an `id` column) with an ephemeral GX context; Data Docs go to docs_dir if given."""
    import great_expectations as gx

    frame = with_derived_columns(frame)
    missing = [c for c in contract.schema_ if c not in frame.columns]
    if missing:
        raise AdapterOpsError(f"Contract {contract.name}: schema column(s) {missing} are not in the records "
                              f"(they have {list(frame.columns)}); map them in the config's `columns` or fix the schema.")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_or_update_pandas(f"{contract.name}_source")
    batch = source.add_dataframe_asset("records").add_batch_definition_whole_dataframe("all_records")
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=f"{contract.name}_v{contract.version}"))
    entries = schema_expectations(contract) + [(None, spec) for spec in contract.expectations]
    for number, (reason, spec) in enumerate(entries):
        expectation = build_expectation(spec, contract.name)
        expectation.meta = {"severity": spec.severity, "entry": number}
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{contract.name}_validation", data=batch, suite=suite))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{contract.name}_checkpoint", validation_definitions=[definition], actions=[],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]}))
    result = checkpoint.run(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    identifier, suite_result = next(iter(result.run_results.items()))
    if docs_dir is not None:
        build_data_docs(context, identifier, suite_result, docs_dir)
    return _map_results(suite_result, entries)


def escaped_for_docs(value):
    """A copy of a GX result value with every string HTML-escaped: GX's Data Docs insert record values raw."""
    if isinstance(value, str):
        return html_text(value)
    if isinstance(value, dict):
        return {k: escaped_for_docs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escaped_for_docs(v) for v in value]
    return value


def build_data_docs(context, identifier, suite_result, docs_dir: Path) -> None:
    """Data Docs from a copy of the result whose record values are escaped (the stored result is replaced)."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    shown = copy.deepcopy(suite_result)
    for item in shown.results:
        item.result = escaped_for_docs(item.result)
    context.validation_results_store.set(key=identifier, value=shown)
    context.add_data_docs_site("contract", {"class_name": "SiteBuilder", "store_backend": {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}})
    context.build_data_docs(site_names=["contract"],
                            resource_identifiers=[identifier, ExpectationSuiteIdentifier(name=suite_result.suite_name)])


def _map_results(suite_result, entries) -> ContractRun:
    """Failing row ids (from GX's unexpected index list) per quarantine check; failed 'fail' checks as problems."""
    run = ContractRun(result=suite_result.to_json_dict())
    for item in suite_result.results:
        config = item.expectation_config
        reason, spec = entries[config.meta["entry"]]
        label = reason or _label(config)
        if not reason:
            run.expected[label] = _expects(config)
        rows = item.result.get("unexpected_index_list") or []
        run.checks.append({"check": label, "severity": spec.severity, "success": bool(item.success),
                           "unexpected": int(item.result.get("unexpected_count") or 0)})
        if (item.exception_info or {}).get("raised_exception"):
            run.problems.append(f"{label} could not run ({item.exception_info.get('exception_message')})")
        elif spec.severity == "fail":
            if not item.success:
                run.problems.append(f"{label} failed")
        elif rows:  # quarantine: every failing row leaves, whatever `mostly` says about the whole column
            for row in rows:
                run.failing.setdefault(str(row["id"]), []).append(label)
        elif not item.success:
            run.problems.append(f"{label} failed and names no rows to quarantine; give it severity fail")
    return run


def check_bounds(contract: Contract, rows_in: int, quarantined: int, passing: pd.DataFrame | None = None) -> list[str]:
    """Dataset-level bounds that reject the version when broken (counts, text lengths, distributions)."""
    bounds, problems = contract.bounds, []
    kept = rows_in - quarantined
    if kept < bounds.min_rows:
        problems.append(f"{kept} rows pass the contract, fewer than min_rows={bounds.min_rows}")
    if rows_in and quarantined / rows_in > bounds.max_quarantined_fraction:
        problems.append(f"{quarantined / rows_in:.1%} of rows quarantined, above max_quarantined_fraction="
                        f"{bounds.max_quarantined_fraction:.0%}")
    if passing is None or passing.empty:
        return problems
    passing = with_derived_columns(passing) if any(c in DERIVED_COLUMNS for c in [*bounds.text_length,
                                                                                   *bounds.distribution]) else passing
    for column, bound in bounds.text_length.items():
        median = float(passing[column].fillna("").str.len().median())
        if bound.min_median is not None and median < bound.min_median:
            problems.append(f"median length of {column} is {median:.0f}, below min_median={bound.min_median:g}")
        if bound.max_median is not None and median > bound.max_median:
            problems.append(f"median length of {column} is {median:.0f}, above max_median={bound.max_median:g}")
    for column, shares in bounds.distribution.items():
        observed = passing[column].value_counts(normalize=True)
        for value, (low, high) in shares.items():
            share = float(observed.get(value, 0.0))
            if not low <= share <= high:
                problems.append(f"{column}={value} is {share:.1%} of passing rows, outside [{low:.0%}, {high:.0%}]")
    return problems


def summary_markdown(contract: Contract, rows_in: int, quarantined: int, run: ContractRun, problems: list[str],
                     breakdown: list[dict] | None = None, table_path=None) -> str:
    """What the owner reads: the verdict, the counts, why rows were quarantined (every stage so far), each check."""
    verdict = "**rejected**: " + md_text("; ".join(problems)) if problems else "**passed**"
    lines = [f"Contract {md_code(contract.name)} v{contract.version} (owners: {md_text(', '.join(contract.owners))}): "
             f"{verdict}", "", f"{rows_in} rows in, {rows_in - quarantined} pass, {quarantined} quarantined.", ""]
    if breakdown is not None:
        lines += ["### Quarantined by reason", "", *breakdown_markdown(breakdown, table_path), ""]
    lines += ["### Checks", "", "| check | severity | success | unexpected rows |", "|---|---|---|---|"]
    lines += [f"| {md_cell(c['check'])} | {c['severity']} | {'yes' if c['success'] else 'no'} | {c['unexpected']} |"
              for c in run.checks]
    return "\n".join(lines)


def reasons_in_brief(breakdown: list[dict], limit: int = 3) -> str:
    """The commonest reasons in one sentence, for the rejection's error line."""
    if not breakdown:
        return ""
    parts = [f"{g['stage']}: {g['reason']} x{g['rows']} (e.g. {g['example']}, expected {g['expected'] or '-'})"
             for g in breakdown[:limit]]
    return " Quarantined most for: " + "; ".join(parts) + ("; ..." if len(breakdown) > limit else "") + "."


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

def validate_file(records_path: str, contract: Contract, stage_dir, earlier_quarantine: list[str] = ()) -> ValidationResult:
    """valid.parquet, contract quarantine, the full GX result (validation.json) and Data Docs under stage_dir.

    earlier_quarantine: the quarantine files of the stages before (ingest, PII, labels); with the contract's
    they make quarantined.parquet, whose breakdown by reason validation.md and validation.json carry."""
    stage_dir = Path(stage_dir)
    frame = pd.read_parquet(records_path)
    docs = stage_dir / "data_docs"
    shutil.rmtree(docs, ignore_errors=True)
    with space_for(docs, left=f"the Data Docs partly written in {docs} are left there (the next run replaces them)"):
        run = run_contract(frame, contract, docs)
    bad = frame["id"].astype(str).isin(run.failing)
    quarantine = pd.DataFrame([
        quarantine_row(rid, row.input_file, row.input_line, "contract", "contract: " + "; ".join(run.failing[rid]),
                       f"{row.prompt!r} -> {row.completion!r}")
        for rid, row in zip(frame.loc[bad, "id"].astype(str), frame.loc[bad].itertuples())
    ], columns=list(QUARANTINE_FIELDS))
    write_parquet(quarantine, stage_dir / "contract_quarantine.parquet")
    write_parquet(frame[~bad], stage_dir / "valid.parquet")
    everything = pd.concat([pd.read_parquet(p) for p in earlier_quarantine] + [quarantine], ignore_index=True)
    write_parquet(everything, stage_dir / "quarantined.parquet")
    breakdown = reason_breakdown(everything, run.expected)
    write_json(run.result | {"quarantine_by_reason": breakdown, "quarantine_table": str(stage_dir / "quarantined.parquet")},
               stage_dir / "validation.json")
    problems = run.problems + check_bounds(contract, len(frame), int(bad.sum()), frame[~bad])
    summary = summary_markdown(contract, len(frame), int(bad.sum()), run, problems, breakdown,
                               stage_dir / "quarantined.parquet")
    write_text(summary + "\n", stage_dir / "validation.md")   # the flow shows it, also when the contract rejects
    if problems:
        raise AdapterOpsError(f"Contract {contract.name} v{contract.version} rejects this corpus version: "
                              + "; ".join(problems) + "." + reasons_in_brief(breakdown)
                              + f" Details: {stage_dir / 'validation.md'} and {docs / 'index.html'}.")
    return ValidationResult(valid=str(stage_dir / "valid.parquet"), quarantine=str(stage_dir / "contract_quarantine.parquet"),
                            result=str(stage_dir / "validation.json"), data_docs=str(docs), input=len(frame),
                            kept=int((~bad).sum()), quarantined=int(bad.sum()), contract=contract.name,
                            contract_version=contract.version, owners=contract.owners)
