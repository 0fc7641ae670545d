"""`adapterops inspect`: the preflight counts and rendered examples with the trained tokens marked, record text escaped."""

import io
import json

from rich.console import Console


def test_inspect_marks_only_the_trained_assistant_tokens_and_escapes_record_text(tmp_path, tiny_model_dir, monkeypatch):
    import cli.commands.inspect as command

    chat = {"messages": [
        {"role": "system", "content": "House policy: refunds need a manager."},
        {"role": "user", "content": "My parcel \x1b[31mis lost [bold]now[/bold]"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": "{\"order_id\": \"A-1\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"status\": \"lost\"}"},
        {"role": "assistant", "content": "Checking.", "weight": 0},
        {"role": "user", "content": "And now?"},
        {"role": "assistant", "content": "Triage: shipping | priority: high"}],
        "tools": [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]}
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps(chat) + "\n" + json.dumps({"prompt": "Invoice wrong", "completion": "Triage: billing"}) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  max_length: 512\n")
    screen = io.StringIO()
    monkeypatch.setattr(command, "out", Console(file=screen, width=300, color_system=None))
    command.inspect(config, data=data, examples=2, corpus_version=None)
    text = screen.getvalue()
    assert "2 examples from 2 records (1 multi-turn)" in text
    assert "⟦Triage: shipping | priority: high</s>⟧" in text and "⟦Triage: billing</s>⟧" in text
    assert '⟦<tool_call>{"name": "lookup_order"' in text
    assert "⟦Checking" not in text and "Checking.</s>" in text       # weight 0: shown, not trained
    assert "[bold]now[/bold]" in text and "\x1b" not in text        # markup shown as text, controls dropped
    assert "⟦House policy" not in text and "⟦And now" not in text
