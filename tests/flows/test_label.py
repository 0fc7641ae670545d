"""Labeling through the CLI and back into curation: decisions become a new corpus version."""

import json
import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from adapterops.config import parse_config
from cli.main import app

SMALL = {"name": "labeled", "approval": "auto", "demo_records": 150}


def annotate(tasks: list[dict], choices: list[tuple[str, str | None]]) -> None:
    """Label Studio annotations by one annotator on the first tasks: (verdict, corrected text or None) each."""
    for task, (verdict, text) in zip(tasks, choices):
        result = [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}}]
        if text:
            result.append({"from_name": "corrected_completion", "to_name": "completion", "type": "textarea",
                           "value": {"text": [text]}})
        task["annotations"] = [{"result": result, "was_cancelled": False, "completed_by": {"email": "lee@example.com"},
                                "updated_at": "2026-11-28T12:00:00Z"}]


def test_exported_tasks_annotated_in_label_studio_change_the_next_version(prefect_harness, tmp_path):
    from flows.curate import curate

    first = curate(parse_config(SMALL))
    runner = CliRunner()
    exported = runner.invoke(app, ["label", "export", "1", "--name", "labeled", "--out", str(tmp_path / "tasks.json"),
                                   "--limit", "5"])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "tasks.interface.xml").is_file()
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert len(tasks) == 5 and {t["data"]["corpus_digest"] for t in tasks} == {first.digest}
    # a correction still has to pass the contract (here: "Triage: <queue> | priority: <level> ...")
    fixed = re.sub(r"^Triage: \w+", "Triage: security", tasks[1]["data"]["completion"])
    assert fixed != tasks[1]["data"]["completion"]
    annotate(tasks, [("accept", None), ("correct", fixed), ("reject", None)])
    (tmp_path / "annotated.json").write_text(json.dumps(tasks))

    checked = runner.invoke(app, ["label", "check", str(tmp_path / "annotated.json"), "--name", "labeled"])
    assert checked.exit_code == 0, checked.output
    assert "corpus v1" in checked.output and "applied" in checked.output and "unlabeled" in checked.output

    second = curate(parse_config(SMALL | {"labels": [str(tmp_path / "annotated.json")]}))
    assert second.new and second.version == 2
    folder = Path(second.path)
    kept = pd.concat([pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "heldout")]).set_index("id")
    corrected, rejected = tasks[1]["data"]["record_id"], tasks[2]["data"]["record_id"]
    assert kept.loc[corrected, "completion"] == fixed and rejected not in kept.index
    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    assert quarantine.loc[quarantine["stage"] == "label", "id"].tolist() == [rejected]
    assert second.counts["quarantined"] == first.counts["quarantined"] + 1
    labels = pd.read_parquet(folder / "labels.parquet")
    assert sorted(labels["outcome"]) == ["applied"] * 3 + ["unlabeled"] * 2
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["labels"][0]["digest"].startswith("sha256:")


def test_label_check_names_what_it_refuses_and_curation_rejects_a_correction_the_contract_quarantines(
        prefect_harness, tmp_path):
    from flows.curate import curate

    curate(parse_config(SMALL))
    runner = CliRunner()
    exported = runner.invoke(app, ["label", "export", "1", "--name", "labeled", "--out", str(tmp_path / "tasks.json"),
                                   "--limit", "4", "--seed", "1"])
    assert exported.exit_code == 0, exported.output
    interface = (tmp_path / "tasks.interface.xml").read_text()
    assert "Required format: Triage: &lt;queue&gt; | priority: &lt;level&gt;" in interface   # from the contract
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    annotate(tasks, [(" Correct ", "Triage: security"), ("ACCEPT", None), ("reject", None)])   # the correction breaks the format
    annotated = tmp_path / "annotated.json"
    annotated.write_text(json.dumps(tasks, indent=2))          # pretty-printed, as an editor saves it

    checked = runner.invoke(app, ["label", "check", str(annotated), "--name", "labeled"], env={"COLUMNS": "250"})
    assert checked.exit_code == 0, checked.output
    broken, unlabeled = tasks[0]["data"]["record_id"], tasks[3]["data"]["record_id"]
    assert "correction_rejected" in checked.output and "Not applied, by task" in checked.output
    lines = {line.split("│")[2].strip(): line for line in checked.output.splitlines() if line.count("│") >= 4}
    assert "line 2" in lines[broken] and "correction_rejected" in lines[broken] and "lee@example.com" in lines[broken]
    assert "unlabeled" in lines[unlabeled] and f"{annotated}: line " in lines[unlabeled]

    second = curate(parse_config(SMALL | {"labels": [str(annotated)]}))
    folder = Path(second.path)
    labels = pd.read_parquet(folder / "labels.parquet").set_index("record_id")
    assert labels.loc[broken, "outcome"] == "correction_rejected" and labels.loc[broken, "where"] == "line 2"
    assert sorted(labels["outcome"]) == ["applied", "applied", "correction_rejected", "unlabeled"]
    quarantine = pd.read_parquet(folder / "quarantine.parquet").set_index("id")
    reason = quarantine.loc[broken, "reason"]
    assert quarantine.loc[broken, "stage"] == "label" and reason.startswith("correction_rejected: contract: ")
    assert f"(line 2 of {annotated}; decision correct by lee@example.com)" in reason


def test_label_export_writes_an_argilla_dataset_folder(prefect_harness, tmp_path):
    from flows.curate import curate

    curate(parse_config(SMALL))
    out = tmp_path / "argilla"
    exported = CliRunner().invoke(app, ["label", "export", "1", "--name", "labeled", "--format", "argilla",
                                        "--out", str(out), "--limit", "3"])
    assert exported.exit_code == 0, exported.output
    records = json.loads((out / "records.json").read_text())
    assert len(records) == 3 and {r["metadata"]["corpus_version"] for r in records} == {1}
    settings = json.loads((out / ".argilla" / "settings.json").read_text())
    assert "Triage: <queue>" in settings["questions"][1]["description"]
    again = CliRunner().invoke(app, ["label", "export", "1", "--name", "labeled", "--format", "argilla", "--out", str(out)])
    assert again.exit_code != 0 and "not an empty folder" in str(again.exception)
