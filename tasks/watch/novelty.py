"""Novelty against the corpus: each recorded conversation's nearest approved corpus record by MinHash Jaccard
(an LSH lookup with the dedup stage's sketches, bands and exact verification: tasks/dedup), the share below
the threshold beside the held-out set's own share (the baseline), and the novel conversations clustered.

What is compared is the customer side of a conversation (its user and tool turns): the system prompt and the
house-style answer are shared by nearly every record (and a production answer imitates the corpus), so a
conversation about a topic the corpus never saw would still look two-fifths like it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from adapterops.config import DedupConfig, WatchConfig
from tasks.dedup import nearest_records, similarity_clusters, sketch_records
from tasks.dedup.clusters import Sketches
from tasks.records.conversation import customer_side_text
_COMMON = frozenset("a an and are as at be but by can for from has have hello hi i in is it its me my no not of on "
                    "or our please so that the this to us was we what when with you your user tool thanks thank "
                    "dear team support kind regards good morning hey".split())


def customer_text(record: dict) -> str:
    """A stored record's (corpus or traffic) user and tool turns, role-tagged as dedup tags conversations."""
    return customer_side_text(record)


def novelty_params(settings: WatchConfig, num_perm: int = 128, seed: int = 1) -> DedupConfig:
    return DedupConfig(threshold=settings.novelty_threshold, ngram=settings.ngram, num_perm=num_perm, seed=seed)


def customer_sketches(records: pd.DataFrame, params: DedupConfig) -> Sketches:
    """Sketches of the records' customer sides, as dedup sketches a records file."""
    texts = pd.DataFrame({"id": records["id"].astype(str).to_numpy(),
                          "text": [customer_text(r) for r in records.to_dict("records")]})
    return sketch_records(texts, params, ("text",))


def nearest_similarity(queries: Sketches, corpus: Sketches, params: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """(nearest corpus row, Jaccard) of every query: an LSH lookup, not a pairwise scan."""
    return nearest_records(queries, corpus, params)


def top_words(texts: list[str], limit: int = 5) -> list[str]:
    """The words a cluster's texts share most (for its label), common words and role tags left out."""
    counts: Counter = Counter()
    for text in texts:
        counts.update({w for w in "".join(c if c.isalnum() else " " for c in text.casefold()).split()
                       if len(w) > 2 and w not in _COMMON and not w.isdigit()})
    ranked = sorted(counts.items(), key=lambda item: (-item[1], -len(item[0]), item[0]))   # ties: longer words say more
    return [w for w, _ in ranked[:limit]]


def novel_clusters(texts: list[str], ids: list[str], sketches: Sketches, settings: WatchConfig,
                   total: int) -> list[dict]:
    """The novel conversations clustered (Jaccard ≥ watch.cluster_threshold), largest first: size, share of the
    window's traffic, shared words and example texts."""
    if not ids:
        return []
    params = DedupConfig(threshold=settings.cluster_threshold, ngram=settings.ngram,
                         num_perm=sketches.signatures.shape[1])
    roots = similarity_clusters(sketches, params)
    groups: dict[int, list[int]] = {}
    for row, root in enumerate(roots.tolist()):
        groups.setdefault(root, []).append(row)
    ordered = sorted(groups.values(), key=lambda rows: (-len(rows), rows[0]))[:settings.clusters_shown]
    return [{"size": len(rows), "share": len(rows) / max(total, 1),
             "words": top_words([texts[r] for r in rows]),
             "examples": [{"id": ids[r], "text": texts[r]} for r in rows[:settings.examples_per_cluster]]}
            for rows in ordered]


def novelty(traffic: pd.DataFrame, train: Sketches, heldout: Sketches, settings: WatchConfig) -> dict:
    """The window's novelty: per-conversation nearest Jaccard, the novel share and the held-out baseline, and
    the novel conversations' clusters."""
    params = novelty_params(settings, train.signatures.shape[1])
    sketches = customer_sketches(traffic, params)
    _, similarity = nearest_similarity(sketches, train, params)
    _, held = nearest_similarity(heldout, train, params)
    novel = similarity < settings.novelty_threshold
    rows = np.flatnonzero(novel)
    texts = [customer_text(r) for r in traffic.iloc[rows].to_dict("records")]
    ids = traffic["id"].astype(str).to_numpy()[rows].tolist()
    clusters = novel_clusters(texts, ids, sketches.take(rows), settings, len(traffic)) if len(rows) else []
    return {"similarity": similarity, "novel": novel, "novel_share": float(novel.mean()) if len(novel) else 0.0,
            "baseline_share": float((held < settings.novelty_threshold).mean()) if len(held) else 0.0,
            "heldout": int(len(held)), "clusters": clusters}
