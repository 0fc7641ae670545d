"""Novelty's nearest-record lookup (LSH bands, exact verification) against a brute-force scan, and the alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adapterops.config import WatchConfig
from adapterops.demo_data import generate_conversations
from tasks.dedup import kernels
from tasks.records.conversation import stored_columns
from tasks.watch.novelty import customer_sketches, customer_text, nearest_similarity, novelty_params, top_words
from tasks.watch.report import alerts, message


def records(count: int, seed: int, prefix: str) -> pd.DataFrame:
    from tasks.records.conversation import conversation_of

    rows = []
    for r in generate_conversations(count, seed, id_prefix=prefix):
        import json

        conversation = conversation_of({"messages": json.dumps(r["messages"]), "prompt": None,
                                        "tools": json.dumps(r["tools"]) if r.get("tools") else None})
        rows.append({"id": r["id"], **stored_columns(conversation)})
    return pd.DataFrame(rows)


def test_the_lookup_finds_what_a_pairwise_scan_finds_with_exact_jaccard():
    settings = WatchConfig()
    params = novelty_params(settings)
    corpus, queries = records(400, 1, "C"), records(120, 2, "Q")
    index, asked = customer_sketches(corpus, params), customer_sketches(queries, params)
    rows, found = nearest_similarity(asked, index, params)
    sets = np.concatenate([index.sets, asked.sets])
    offsets = np.concatenate([index.set_offsets, index.set_offsets[-1] + asked.set_offsets[1:]])
    best = []
    for q in range(len(queries)):
        every = kernels.pair_jaccard(sets, offsets, np.arange(len(corpus)), np.full(len(corpus), len(corpus) + q))
        best.append(every.max())
        if rows[q] >= 0:     # the value returned is the exact Jaccard of the row returned
            assert abs(found[q] - every[rows[q]]) < 1e-12
    best = np.array(best)
    above = best >= settings.novelty_threshold
    assert above.sum() > 100
    agree = (found >= settings.novelty_threshold) == above
    assert agree.mean() >= 0.97          # the lookup's verdict is the scan's for nearly every query
    assert (found <= best + 1e-12).all()


def test_customer_text_leaves_out_the_system_prompt_and_the_answers():
    row = records(1, 3, "X").iloc[0].to_dict()
    text = customer_text(row)
    assert text.startswith("user: ") and "Acme Support triage" not in text and "Triage:" not in text


def test_cluster_words_prefer_what_the_texts_share():
    words = top_words(["user: my thermostat reboots at night", "user: the thermostat reboots again"])
    assert words[:2] == ["thermostat", "reboots"]


def test_alerts_trip_on_novelty_a_score_drop_and_bad_feedback_but_not_on_a_small_window():
    settings = WatchConfig(min_conversations=20)
    figures = {"conversations": 200, "novel_share": 0.31, "baseline_share": 0.04,
               "scores": [{"score": "format", "production": 0.84, "release": 0.99, "worse_by": 0.15},
                          {"score": "pii_leak", "production": 0.0, "release": 0.0, "worse_by": 0.0}],
               "feedback": {"count": 10, "bad_share": 0.5}}
    tripped = alerts(figures, settings)
    assert message("support-triage-adapter", "3", tripped[:2]) == (
        "support-triage-adapter v3: 31% of this window's traffic is unlike the corpus (baseline 4%); format 0.99 → 0.84")
    assert tripped[2] == "50% of 10 rated answers were rated bad"
    assert alerts(figures | {"conversations": 19}, settings) == []


def test_customer_text_read_from_the_json_is_the_role_tagged_text_of_those_turns():
    from tasks.records.conversation import Conversation, conversation_of, role_tagged_text

    frame = records(200, 4, "Y")
    for row in frame.to_dict("records") + [{"id": "o", "prompt": "one turn ", "completion": "ok", "messages": None}]:
        kept = tuple(m for m in conversation_of(row).messages if m.role in ("user", "tool"))
        assert customer_text(row) == role_tagged_text(Conversation(messages=kept))
