"""The review an owner reads: curation summary, bounded and escaped samples of changes, clusters, labels, links."""

import pandas as pd

from adapterops.escaping import md_excerpt
from tasks.approve.review import contract_summary, review_markdown

COLUMNS = ["id", "source", "timestamp", "prompt", "completion"]


def test_escaping_leaves_no_markup_no_html_no_autolink_and_one_line():
    text = md_excerpt("<script>alert(1)</script> [click](javascript:x) | **bold**\n# title\x1b[31m https://x.example")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "](" not in text and "\\[click\\]\\(javascript\\:x\\)" in text
    assert "\\|" in text and "\\*\\*bold\\*\\*" in text and "\n" not in text and "\x1b" not in text
    assert "https://" not in text and "[31m" not in text     # no bare URL to autolink, the colour code dropped whole
    assert md_excerpt("x" * 500).endswith("…") and len(md_excerpt("x" * 500)) == 241


def parts(sample_rows=8):
    old = pd.DataFrame([[f"T{i}", "email", "t", f"prompt {i}", f"reply {i}"] for i in range(sample_rows)], columns=COLUMNS)
    new = old.copy()
    new.loc[0, "completion"] = "reply 0 <b>fixed</b>"
    new = pd.concat([new, pd.DataFrame([[f"N{i}", "chat", "t", f"new prompt {i}", f"new reply {i}"]
                                        for i in range(sample_rows)], columns=COLUMNS)], ignore_index=True)
    from tasks.corpus.versions import diff_records

    validation = {"success": False, "statistics": {"successful_expectations": 5, "evaluated_expectations": 6},
                  "results": [{"success": True, "expectation_config": {"type": "ok", "kwargs": {}}},
                              {"success": False, "result": {"unexpected_count": 2},
                               "expectation_config": {"type": "expect_column_values_to_match_regex",
                                                      "kwargs": {"column": "completion"},
                                                      "meta": {"severity": "quarantine"}}}]}
    return {"counts": {"input": 30, "kept": 16, "exact_duplicates": 3, "near_duplicates": 2, "quarantined": 9},
            "quarantine_reasons": [
                {"stage": "contract", "reason": "contract expect_column_values_to_match_regex(completion)", "rows": 2,
                 "example": "id T9 (line 9 of a.jsonl)", "field": "completion", "expected": "values to match regex"},
                {"stage": "pii", "reason": "pii: card", "rows": 1, "example": "id T7 (line 7 of a.jsonl)",
                 "field": "card", "expected": "no PII of these kinds"}],
            "pii": {"detectors": [{"detector": "card", "found": 1, "records": 1, "action": "quarantine"},
                                  {"detector": "email", "found": 0, "records": 0, "action": "redact"}]},
            "contract": contract_summary(validation, "support_tickets", 1),
            "dedup_report": {"largest_clusters": [{"kept_id": "T1", "kept_text": "kept <i>text</i>", "size": 3,
                                                   "duplicates": [{"kind": "exact"}, {"kind": "near"}]}]},
            "label_outcomes": {"applied": 3, "stale": 1},
            "links": {"mlflow": "http://mlflow:5000/#/experiments/1/runs/abc", "prefect": "http://prefect:4200/runs/flow-run/f"},
            "new_label": "v2", "old_label": "v1 (approved)", "new": new, "old": old, "diff": diff_records(old, new)}


def test_the_review_carries_curation_changes_clusters_labels_and_links():
    text = review_markdown(parts(), sample=3)
    assert "| 30 | 16 | 3 | 2 | 9 |" in text
    assert "| 1 | pii | pii\\: card | id T7 \\(line 7 of a\\.jsonl\\) | card | no PII of these kinds |" in text
    assert "Every quarantined row, with its reason and raw text: `quarantine.parquet`" in text
    assert "card in 1 record(s), quarantine" in text and "email" not in text.split("PII:")[1].split("\n")[0]
    assert "Contract support_tickets v1: failed (5/6 expectations)" in text
    assert "`expect_column_values_to_match_regex` on completion (quarantine, 2 row(s))" in text
    assert "**Added** (3 of 8)" in text and "new prompt 2" in text and "new prompt 3" not in text
    assert "**Changed** (1 of 1)" in text and "completion: reply 0 → reply 0 &lt;b&gt;fixed&lt;/b&gt;" in text
    assert "kept `T1` with 2 removed (exact, near): kept &lt;i&gt;text&lt;/i&gt;" in text
    assert "| applied | 3 |" in text
    assert "[MLflow corpus run](http://mlflow:5000/#/experiments/1/runs/abc)" in text
    assert "[Prefect curate run](http://prefect:4200/runs/flow-run/f)" in text


def test_a_first_version_and_a_sample_of_zero():
    first = parts() | {"old_label": None, "diff": None}
    text = review_markdown(first, sample=0)
    assert "v2 is the first version to be approved: 16 records" in text and "**Added**" not in text
