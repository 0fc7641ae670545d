"""`adapterops validate` on files other tools export: the whole-file lines are said once, before rows."""

import json

from typer.testing import CliRunner

from adapterops.demo_data import generate_conversations
from adapterops.errors import AdapterOpsError


def test_a_chat_export_without_ids_says_once_that_its_ids_are_content_hashes(tmp_path):
    from cli.main import app

    rows = [{k: v for k, v in r.items() if k != "id"} for r in generate_conversations(80, 9)]
    (tmp_path / "chat.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "chat.jsonl"), "--contract",
                                      "data_contracts/support_conversations.yaml", "--out", str(tmp_path / "out")])
    assert result.output.count("ids are content hashes") == 1, result.output
    assert result.output.index("ids are content hashes") < result.output.index("rows in:")
    assert "80 rows in: 80 pass, 0 quarantined" in result.output


def test_an_unrecognised_file_is_one_line_naming_the_fix(tmp_path):
    from cli.main import app

    (tmp_path / "odd.jsonl").write_text('{"ticket": 1, "body": "hi"}\n{"ticket": 2, "body": "ho"}\n')
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "odd.jsonl"), "--contract", "support_tickets",
                                      "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, AdapterOpsError)
    message = str(result.exception)
    assert "unrecognised record format" in message and "columns.prompt" in message and "\n" not in message
