"""The Label Studio interface: checked as XML here, and by Label Studio 1.23.2's own validator and export
converter when the labeling lane's venv (.venv-labelstudio) is present."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from tasks.label.files import read_label_file
from tasks.label.labeling import (
    LABEL_STUDIO_INTERFACE,
    export_tasks,
    format_hint,
    label_studio_interface,
)
from tasks.records.contract import load_contract
from tests.refs import fake_corpus

ROOT = Path(__file__).resolve().parents[3]
LABEL_STUDIO_PYTHON = ROOT / ".venv-labelstudio" / "bin" / "python"


def test_correction_box_is_prefilled_and_shown_only_with_correct_and_the_note_required_with_reject():
    hint = format_hint(load_contract("support_tickets"))
    view = ET.fromstring(label_studio_interface(hint))
    boxes = {box.get("name"): box for box in view.iter("TextArea")}
    parents = {child: parent for parent in view.iter() for child in parent}
    correction, note = boxes["corrected_completion"], boxes["note"]
    assert correction.get("value") == "$completion" and correction.get("required") == "true"
    assert note.get("required") == "true" and note.get("value") is None
    for box, verdict in ((correction, "correct"), (note, "reject")):
        shown_when = parents[box]
        assert (shown_when.get("visibleWhen"), shown_when.get("whenTagName"), shown_when.get("whenChoiceValue")) == (
            "choice-selected", "verdict", verdict)
        assert shown_when[0].tag == "Header"                   # every box has a heading
    headers = [h.get("value") for h in view.iter("Header")]
    assert f"Required format: {hint}" in headers and "<queue>" in hint          # escaped in the XML, shown as written
    assert [c.get("value") for c in view.iter("Choice")] == ["accept", "correct", "reject"]
    assert "Required format" not in LABEL_STUDIO_INTERFACE


def test_a_hint_cannot_break_the_xml_or_read_task_data():
    view = ET.fromstring(label_studio_interface('say "hi" & <b>$prompt</b>\nthen'))
    assert "Required format: say \"hi\" & <b>prompt</b> then" in [h.get("value") for h in view.iter("Header")]


SCRIPT = """
import json, sys, django
django.setup()
from core.label_config import validate_label_config
from label_studio_sdk.converter import Converter
xml, export, out = sys.argv[1:4]
validate_label_config(open(xml).read())
try:
    validate_label_config(open(xml).read().replace('toName="completion" value=', 'toName="nowhere" value='))
    print("broken accepted")
except Exception:
    print("broken refused")
converter = Converter(config=open(xml).read(), project_dir=out)
converter.convert_to_json_min(export, out + "/min", is_dir=False)
converter.convert_to_csv(export, out + "/csv", is_dir=False, sep=",", header=True)
"""


@pytest.mark.skipif(not LABEL_STUDIO_PYTHON.is_file(),
                    reason="Label Studio is not installed here (.venv-labelstudio, made by the labeling test lane)")
def test_label_studio_accepts_the_interface_and_its_other_exports_read_back(tmp_path):
    (tmp_path / "interface.xml").write_text(label_studio_interface(format_hint(load_contract("support_tickets"))))
    records = pd.DataFrame({"id": ["a", "b"], "source": ["email"] * 2, "timestamp": ["2026-01-01"] * 2,
                            "prompt": ["reset my password", "refund please"], "completion": ["Triage: x", "Triage: y"]})
    tasks = export_tasks(records, fake_corpus(pipeline="t", version=1, digest="sha256:x"), "label-studio")
    tasks[0] |= {"id": 1, "annotations": [{
        "id": 7, "completed_by": {"id": 3, "email": "kim@example.com"}, "lead_time": 2.0, "was_cancelled": False,
        "created_at": "2026-02-01T10:00:00Z", "updated_at": "2026-02-01T10:00:00Z",
        "result": [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": ["correct"]}},
                   {"from_name": "corrected_completion", "to_name": "completion", "type": "textarea",
                    "value": {"text": ["Triage: z"]}}]}]}
    tasks[1] |= {"id": 2, "annotations": []}
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    where = "import label_studio, os; print(os.path.dirname(label_studio.__file__))"
    site = subprocess.run([str(LABEL_STUDIO_PYTHON), "-c", where], capture_output=True, text=True, check=True).stdout.strip()
    env = os.environ | {"PYTHONPATH": site, "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
                        "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "data"), "LATEST_VERSION_CHECK": "false",
                        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}          # offline: no version check, no error reports
    run = subprocess.run([str(LABEL_STUDIO_PYTHON), "-c", SCRIPT, str(tmp_path / "interface.xml"),
                          str(tmp_path / "export.json"), str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tmp_path, check=False)       # not the repository root: its tasks/ would shadow Label Studio's
    assert run.returncode == 0, run.stderr[-2000:]
    assert "broken refused" in run.stdout                    # the validator does refuse a broken interface
    for path in (tmp_path / "min" / "result.json", tmp_path / "csv" / "result.csv"):
        read, problems = read_label_file(path)
        assert problems == [] and [t["data"]["record_id"] for t in read] == ["a", "b"]
        assert [a["completed_by"] for a in read[0]["annotations"]] == ["kim@example.com"] and read[1]["annotations"] == []
        assert read[0]["annotations"][0]["result"][1]["value"] == {"text": ["Triage: z"]}
