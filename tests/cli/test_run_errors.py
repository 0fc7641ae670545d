"""A failing `adapterops run` prints its error once (not again for the task, the flow and the parent flow),
and that error names the commonest quarantine reasons."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow   # a whole `adapterops run` process
def test_a_run_rejected_by_the_contract_prints_its_error_once_naming_the_reasons(tmp_path):
    words = ["parcel", "refund", "invoice", "login", "printer", "modem", "courier", "voucher", "password", "upgrade"]
    rows = [{"id": f"t{i}", "source": "fax", "timestamp": "2026-01-01T10:00",     # distinct: dedup keeps all 60
             "prompt": f"Ticket {i}: my {words[i % 10]} and my {words[i // 10]} broke on day {i * 7}, please help",
             "completion": f"Triage: support | priority: normal | team: desk{i}\nReply: we fixed {words[i % 10]} {i}"}
            for i in range(60)]
    (tmp_path / "tickets.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:5]) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"name: rejected\nsources: ['{tmp_path / 'tickets.jsonl'}']\neval_source: '{tmp_path / 'eval.jsonl'}'\n"
                      "approval: auto\n")
    env = os.environ | {"ADAPTEROPS_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "home" / "prefect")}
    result = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "run", str(config)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=os.getcwd())
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert output.count("fewer than min_rows=50") == 1, output
    assert "AdapterOpsError" not in output and "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if "fewer than min_rows" in line]
    assert line.startswith("error:"), line
    assert "Quarantined most for: contract: contract expect_column_values_to_be_in_set(source) x60" in line, line
