"""Contracts: checking the file, GX results mapped to the right rows, each severity, bounds, the CLI."""

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from adapterops.errors import AdapterOpsError
from tasks.curate.validate import check_bounds, run_contract, validate_file
from tasks.records.contract import Contract, contract_problems, load_contract

BASE = {"name": "tickets", "version": 3, "description": "Support tickets.", "scope": "All channels.",
        "owners": ["dana.k"],
        "schema": {"id": {}, "source": {}, "prompt": {}, "completion": {"required": False},
                   "priority": {"type": "integer", "required": False}}}


def contract(**changes) -> Contract:
    return Contract.model_validate(BASE | changes)


def frame() -> pd.DataFrame:
    # ids deliberately out of order with the index, so a mix-up between positions and ids would show
    return pd.DataFrame({"id": ["r9", "r3", "r7", "r1", "r5"],
                         "source": ["email", "chat", "fax", "email", None],
                         "prompt": ["a long prompt", "short", "a long prompt", "a long prompt", "a long prompt"],
                         "completion": ["x", None, "y", "z", "w"],
                         "priority": ["1", "2", "high", None, "3"]}, index=[4, 0, 3, 1, 2])


def test_quarantine_expectations_and_the_schema_map_failing_rows_to_their_ids_with_reasons():
    run = run_contract(frame(), contract(expectations=[
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "source", "value_set": ["email", "chat"]}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "prompt", "min_value": 8}}]))
    assert {rid: sorted(reasons) for rid, reasons in run.failing.items()} == {
        "r7": ["expect_column_values_to_be_in_set(source)", "wrong_type: priority expected integer"],
        "r5": ["missing_required: source"],
        "r3": ["expect_column_value_lengths_to_be_between(prompt)"]}
    assert run.problems == []
    assert run.result["success"] is False and len(run.result["results"]) == 6   # the full GX result, as JSON
    json.dumps(run.result)


def test_fail_severity_rejects_the_version_instead_of_quarantining_rows():
    run = run_contract(frame(), contract(expectations=[
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "source", "value_set": ["email", "chat"]},
         "severity": "fail"},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}, "severity": "fail"}]))
    assert run.problems == ["expect_column_values_to_be_in_set(source) failed",
                            "expect_table_row_count_to_be_between() failed"]
    assert set(run.failing) == {"r5", "r7"}                      # the schema's own checks still quarantine


def test_quarantine_ignores_mostly_so_every_failing_row_leaves():
    run = run_contract(frame(), contract(expectations=[
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "source", "value_set": ["email", "chat"], "mostly": 0.5}}]))
    assert "expect_column_values_to_be_in_set(source)" in run.failing["r7"]


def test_a_schema_column_missing_from_the_records_is_an_error_that_says_what_to_do():
    with pytest.raises(AdapterOpsError, match=r"\['label'\] are not in the records.*columns"):
        run_contract(frame(), contract(schema=BASE["schema"] | {"label": {}}))


def test_dataset_bounds():
    bounded = contract(bounds={"min_rows": 3, "max_quarantined_fraction": 0.25,
                               "text_length": {"prompt": {"min_median": 20}},
                               "distribution": {"source": {"email": [0.6, 1.0], "chat": [0.0, 0.1]}}})
    passing = frame().iloc[[0, 1, 3]]
    problems = check_bounds(bounded, rows_in=5, quarantined=2, passing=passing)
    assert [p.split(" ")[0] for p in problems] == ["40.0%", "median", "source=chat"]
    assert "fewer than min_rows=3" in check_bounds(bounded, 5, 3)[0]
    assert check_bounds(contract(), 5, 0, frame()) == []


# --- the contract file ------------------------------------------------------------------------------

def test_contract_problems_are_one_line_each():
    data = {k: v for k, v in BASE.items() if k != "owners"} | {"expectations": [
        {"type": "expect_column_values_to_be_purple", "kwargs": {"column": "prompt"}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "prompt", "min_value": "abc"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "prompt"}, "severity": "warn"}]}
    problems = contract_problems(data, "c.yaml")
    assert len(problems) == 6 and all("\n" not in p and p.startswith("c.yaml: ") for p in problems)
    text = "\n".join(problems)
    for expected in ("missing field 'owners'", "expectation 5: field 'severity'", "unknown expectation type "
                     "'expect_column_values_to_be_purple'", "expectation 2: expect_column_value_lengths_to_be_between: "
                     "bad arguments", "min_value", "expectation 3 (expect_table_row_count_to_be_between) judges the "
                     "whole dataset", "names column 'label', which is not in the schema"):
        assert expected in text
    assert contract_problems(BASE | {"owners": []}, "c.yaml") == [
        "c.yaml: field 'owners' is empty; list at least one person who may approve versions."]


def test_the_shipped_contract_is_valid_and_load_contract_raises_the_first_problem(tmp_path, monkeypatch):
    shipped = load_contract("support_tickets")
    assert shipped.owners and shipped.pii.card == "quarantine" and shipped.bounds.distribution
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(BASE | {"version": 0, "owners": []}))
    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(tmp_path))
    with pytest.raises(AdapterOpsError, match=r"broken.yaml: field 'version'.*\(1 more: run `adapterops contract check"):
        load_contract("broken")
    with pytest.raises(AdapterOpsError, match="not found"):
        load_contract("absent")


# --- wrapper and CLI ----------------------------------------------------------------------------------

def test_validate_file_writes_result_and_data_docs_and_rejects_with_both_on_disk(tmp_path, monkeypatch):
    records = frame().assign(timestamp="t", input_file="in.jsonl", input_line=range(1, 6))
    records.to_parquet(tmp_path / "records.parquet")
    (tmp_path / "tickets.yaml").write_text(yaml.safe_dump(BASE | {"bounds": {"max_quarantined_fraction": 0.2}}))
    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(tmp_path))
    with pytest.raises(AdapterOpsError, match="rejects this corpus version: 40.0% of rows quarantined"):
        validate_file(str(tmp_path / "records.parquet"), load_contract("tickets"), tmp_path / "stage")
    stage = tmp_path / "stage"
    assert json.loads((stage / "validation.json").read_text())["success"] is False
    assert "<html" in (stage / "data_docs" / "index.html").read_text().lower()
    quarantine = pd.read_parquet(stage / "contract_quarantine.parquet")
    assert dict(zip(quarantine["id"], quarantine["input_line"])) == {"r7": 3, "r5": 5}
    assert set(quarantine["stage"]) == {"contract"} and len(pd.read_parquet(stage / "valid.parquet")) == 3


def test_cli_contract_check_and_validate(tmp_path):
    from cli.main import app

    runner = CliRunner()
    good = runner.invoke(app, ["contract", "check", "data_contracts/support_tickets.yaml"])
    assert good.exit_code == 0 and "ok:" in good.output
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "owners"}))
    bad = runner.invoke(app, ["contract", "check", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 1 and "missing field 'owners'" in bad.output

    rows = [{"id": f"t{i}", "source": "email", "timestamp": "2026-01-01T10:00", "prompt": "My order is late " * 3,
             "completion": "Triage: shipping | priority: normal | " + "x" * 60} for i in range(60)]
    rows[3]["source"] = "fax"
    rows[4]["prompt"] += " card 4111 1111 1111 1111"
    data = "\n".join(json.dumps(r) for r in rows) + "\n{broken\n"
    (tmp_path / "in.jsonl").write_text(data)
    out = tmp_path / "out"
    result = runner.invoke(app, ["validate", str(tmp_path / "in.jsonl"), "--contract", "support_tickets",
                                 "--out", str(out)])
    # the shipped contract's distribution bounds reject an all-email input: results are written anyway
    assert isinstance(result.exception, AdapterOpsError) and "source=chat" in str(result.exception)
    assert "61 rows in: 58 pass, 3 quarantined (ingest 1, pii 1, contract 1)" in result.output
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert sorted(quarantine["stage"]) == ["contract", "ingest", "pii"]
    assert len(pd.read_parquet(out / "passing.parquet")) == 58
    assert (out / "validation.json").is_file() and (out / "data_docs" / "index.html").is_file()
