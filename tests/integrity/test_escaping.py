"""Case 10: record text reaches people inert: markdown artifacts, Data Docs, Label Studio tasks, the terminal.

The markdown is rendered with a real CommonMark renderer (markdown-it, raw HTML allowed as in the Prefect
UI) and the output checked for live tags, javascript: links and broken code spans.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from adapterops.escaping import html_text, md_cell, md_code, md_text, plain_text, terminal
from tests.refs import fake_corpus

HOSTILE = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "[click](javascript:alert(1))",
           "<javascript:alert(1)>", "id`with``backticks`", "pipe|in|id", "\x1b[31mred\x1b[0m\x1b[2J cleared",
           "\x1b]8;;javascript:alert(1)\x1b\\link\x1b]8;;\x1b\\", "\x1b]0;owned title\x07after", "**bold** _x_ # h",
           "[b]rich markup[/b] [link=javascript:alert(1)]x[/link]", "bidi \u202eevil\u202c end", "line\nbreak"]


def render(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def assert_inert(rendered: str) -> None:
    assert not re.search(r"<(img|script|a)\b", rendered), rendered
    assert "javascript:" not in " ".join(re.findall(r'href="([^"]*)"', rendered))
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", rendered)


def code_spans(rendered: str) -> set[str]:
    return {html.unescape(m) for m in re.findall(r"<code>(.*?)</code>", rendered, flags=re.S)}


def test_each_helper_leaves_hostile_text_inert_and_readable():
    for text in HOSTILE:
        visible = " ".join(plain_text(text).split())
        assert_inert(render(md_text(text)))
        assert html.unescape(re.sub(r"</?p>", "", render(md_text(visible))).strip()) == visible
        assert code_spans(render(md_code(text))) == {visible}
        table = render(f"| a | b |\n|---|---|\n| {md_code(text, in_table=True)} | {md_cell(text)} |")
        assert_inert(table)
        assert table.count("<td>") == 2 and code_spans(table) == {visible}
        assert "<" not in html_text(text) and "\x1b" not in terminal(text) and "\x1b" not in html_text(text)
    assert plain_text("a\x1b[31mb\x1b]8;;u\x07c\x9b2Jd\te\nf") == "abcd\te\nf"


def test_dedup_report_and_corpus_diff_markdown_are_inert():
    from tasks.corpus.versions import diff_markdown
    from tasks.dedup.report import report_markdown

    ids = [f"r{i}{h}" for i, h in enumerate(HOSTILE)]
    report = {"counts": {"input": 3, "kept": 1, "exact": 1, "near": 1, "removed": 2},
              "by_source": [{"source": h, "input": 1, "kept": 1, "exact": 0, "near": 0} for h in HOSTILE],
              "jaccard_histogram": [],
              "largest_clusters": [{"kept_id": ids[0], "size": len(ids), "kept_text": HOSTILE[0],
                                    "duplicates": [{"id": i, "kind": "near", "jaccard": 0.9, "text": h}
                                                   for i, h in zip(ids[1:], HOSTILE[1:])]}]}
    rendered = render(report_markdown(report))
    assert_inert(rendered)
    assert {" ".join(plain_text(i).split()) for i in ids} <= code_spans(rendered)      # every id intact in its span
    diff = {"added": ids, "removed": [], "changed": [], "sources": {h: {"old": 0, "new": 1} for h in HOSTILE}}
    rendered = render(diff_markdown(diff, "v1", "v2", sample=len(ids)))
    assert_inert(rendered)
    assert {" ".join(plain_text(i).split()) for i in ids} <= code_spans(rendered)


def test_data_docs_show_record_values_escaped(tmp_path):
    from tasks.curate.validate import run_contract
    from tasks.records.contract import load_contract

    rows = [{"id": f"<script>alert({i})</script>", "source": HOSTILE[0], "timestamp": "2026-01-01T00:00",
             "prompt": "p" * 30, "completion": f"{HOSTILE[2]} <img src=y onerror=alert(2)>"} for i in range(6)]
    run = run_contract(pd.DataFrame(rows), load_contract("support_tickets"), tmp_path)
    assert "<script>alert(0)</script>" in run.failing               # the result itself keeps the real ids
    pages = [p.read_text(encoding="utf-8") for p in tmp_path.rglob("*.html")]
    assert len(pages) >= 3 and any("&lt;img src=x onerror=alert(1)&gt;" in page for page in pages)
    for page in pages:
        assert "<img src=" not in page and "<script>alert" not in page


def test_label_studio_tasks_show_record_text_as_plain_text():
    from tasks.label.labeling import LABEL_STUDIO_INTERFACE, export_tasks

    bound = re.findall(r"<(\w+)[^>]*value=\"\$(\w+)\"", LABEL_STUDIO_INTERFACE)
    assert bound and all(tag in ("Text", "TextArea") for tag, _ in bound)   # plain text; never HyperText / HTML / Header
    assert ("TextArea", "completion") in bound                                 # the correction box starts filled
    frame = pd.DataFrame([{"id": "r1", "source": "chat", "timestamp": "t", "prompt": HOSTILE[6] + HOSTILE[0],
                           "completion": HOSTILE[8]}])
    data = export_tasks(frame, fake_corpus(pipeline="p", version=1, digest="sha256:x"), "label-studio")[0]["data"]
    assert data["prompt"] == "red cleared<img src=x onerror=alert(1)>"    # controls gone, the rest shown as typed
    assert data["completion"] == "after"


def test_terminal_commands_strip_escapes_from_record_text(monkeypatch, mlflow_client, tmp_path):
    from typer.testing import CliRunner

    import tasks.corpus
    from cli.main import app
    from tasks.release.registry import move_production

    frames = {1: pd.DataFrame({"id": ["a", "b"], "source": ["chat", "chat"], "timestamp": ["t", "t"],
                               "prompt": ["x", "y"], "completion": ["x", "y"]})}
    frames[2] = pd.concat([frames[1], pd.DataFrame({"id": HOSTILE, "source": HOSTILE, "timestamp": "t",
                                                     "prompt": "p", "completion": "c"})], ignore_index=True)
    monkeypatch.setattr(tasks.corpus, "get_version", lambda name, version: version)      # the face commands import
    monkeypatch.setattr(tasks.corpus, "version_records", lambda version: frames[version])
    shown = CliRunner().invoke(app, ["corpus", "diff", "1", "2", "--name", "hostile"])
    assert shown.exit_code == 0, shown.output
    assert not re.search(r"[\x1b\x07\x9b\x9d]", shown.output) and "owned title" not in shown.output
    assert "red cleared" in shown.output and "<script>alert(1)</script>" in shown.output   # shown as text

    name = "escaping-model"
    mlflow_client.create_registered_model(name)
    (tmp_path / "a").mkdir()
    for _ in range(2):
        mlflow_client.create_model_version(name, source=str(tmp_path / "a"))
    for version in ("1", "2"):
        move_production(mlflow_client, mlflow_client.get_registered_model(name), version, "promote", "release gate",
                        HOSTILE[6] + HOSTILE[10])
    monkeypatch.setattr("tasks.release.registry._signer", lambda *args: None)   # authority: test_release_authority.py
    rolled = CliRunner().invoke(app, ["release", "rollback", "--model", name, "--as", HOSTILE[8], "--reason", HOSTILE[7]])
    history = CliRunner().invoke(app, ["release", "history", "--model", name])
    for result in (rolled, history):
        assert result.exit_code == 0, result.output
        assert not re.search(r"[\x1b\x07\x9b\x9d]", result.output)
    squeezed = re.sub(r"[\s\u2500-\u257f]", "", history.output)          # the table wraps and cuts cells
    assert "redcleared[b]ri" in squeezed                                       # Rich markup shown, not applied
