"""`adapterops fit-check` on curated versions, and the fit section of the owner's review: the demo's stable corpus
fits; a corpus whose replies quote prices, dates and URLs of their own is told to serve those from retrieval."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adapterops.config import parse_config
from adapterops.demo_data import generate_conversations
from cli.main import app

pytestmark = pytest.mark.slow       # two curations (about a minute here)

PLANTED = " Our Pro plan costs $49.99 per month until 2027-01-31: https://acme.example/pricing"


def test_the_demo_fits_and_a_corpus_of_volatile_facts_does_not(prefect_harness, tmp_path):
    from flows.curate import curate

    curate(parse_config({"name": "fits", "approval": "auto", "demo_records": 200}))
    stable = CliRunner().invoke(app, ["fit-check", "1", "--name", "fits", "--fail"], env={"COLUMNS": "200"})
    assert stable.exit_code == 0, stable.output
    assert "Fits." in stable.output and "A fine-tune fits: 0% of replies" in stable.output
    shown = CliRunner().invoke(app, ["corpus", "show", "1", "--name", "fits"], env={"COLUMNS": "200"})
    assert "Fit: is a fine-tune the right tool?" in shown.output

    records = generate_conversations(200, 5)
    for record in records[::2]:
        record["messages"][-1]["content"] += PLANTED
    source = tmp_path / "prices.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    curate(parse_config({"name": "prices", "approval": "auto", "sources": [str(source)]}))
    flagged = CliRunner().invoke(app, ["fit-check", "1", "--name", "prices", "--fail"], env={"COLUMNS": "200"})
    assert flagged.exit_code == 1, flagged.output
    assert "Does not fit" in flagged.output and "serve those from retrieval" in flagged.output
    figures = json.loads(CliRunner().invoke(app, ["fit-check", "1", "--name", "prices", "--json"]).output)
    assert set(figures["volatile"]["kinds"]) >= {"price", "date", "url"} and figures["volatile"]["share"] > 0.2
