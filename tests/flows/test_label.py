"""Labeling through the CLI and back into curation: decisions become a new corpus version."""

import json
import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from adapterops.cli import app
from adapterops.config import parse_config

SMALL = {"name": "labeled", "approval": "auto", "demo_records": 150}


def test_exported_tasks_annotated_in_label_studio_change_the_next_version(prefect_harness, tmp_path):
    from flows.curate import curate

    first = curate(parse_config(SMALL))
    runner = CliRunner()
    exported = runner.invoke(app, ["label", "export", "1", "--name", "labeled", "--out", str(tmp_path / "tasks.json"),
                                   "--limit", "5"])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "tasks.interface.xml").is_file()
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert len(tasks) == 5 and {t["data"]["corpus_digest"] for t in tasks} == {first["digest"]}
    # a correction still has to pass the contract (here: "Triage: <queue> | priority: <level> ...")
    fixed = re.sub(r"^Triage: \w+", "Triage: security", tasks[1]["data"]["completion"])
    assert fixed != tasks[1]["data"]["completion"]
    choices = [("accept", None), ("correct", fixed), ("reject", None)]
    for task, (verdict, text) in zip(tasks, choices):
        result = [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}}]
        if text:
            result.append({"from_name": "corrected_completion", "to_name": "completion", "type": "textarea",
                           "value": {"text": [text]}})
        task["annotations"] = [{"result": result, "was_cancelled": False, "completed_by": {"email": "lee@example.com"},
                                "updated_at": "2026-11-28T12:00:00Z"}]
    (tmp_path / "annotated.json").write_text(json.dumps(tasks))

    checked = runner.invoke(app, ["label", "check", str(tmp_path / "annotated.json"), "--name", "labeled"])
    assert checked.exit_code == 0, checked.output
    assert "corpus v1" in checked.output and "applied" in checked.output and "unlabeled" in checked.output

    second = curate(parse_config(SMALL | {"labels": [str(tmp_path / "annotated.json")]}))
    assert second["new"] and second["version"] == 2
    folder = Path(second["path"])
    kept = pd.concat([pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "heldout")]).set_index("id")
    corrected, rejected = tasks[1]["data"]["record_id"], tasks[2]["data"]["record_id"]
    assert kept.loc[corrected, "completion"] == fixed and rejected not in kept.index
    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    assert quarantine.loc[quarantine["stage"] == "label", "id"].tolist() == [rejected]
    assert second["counts"]["quarantined"] == first["counts"]["quarantined"] + 1
    labels = pd.read_parquet(folder / "labels.parquet")
    assert sorted(labels["outcome"]) == ["applied"] * 3 + ["unlabeled"] * 2
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["labels"][0]["digest"].startswith("sha256:")
