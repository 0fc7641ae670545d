"""Near-duplicate removal, raw text → clusters: AdapterOps vs datasketch documented usage vs rensa.

    .venv/bin/pip install -e '.[bench]'   # rensa, benchmark only
    .venv/bin/python benchmarks/dedup.py --docs 100000 [--workers 2] [--skip-datasketch]

A seeded corpus of ~150-word documents with planted near-duplicate families (substitutions,
insertions, deletions, reordering, boilerplate wrappers, formatting noise). Ground truth is the
exact Jaccard of word 5-gram sets, computed here with Python sets, independent of the pipelines.
All three pipelines use 128 permutations, 16 bands x 8 rows, and verify candidates by exact Jaccard
>= 0.8 before union-find, so their recall is comparable and the times measure the engines.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.dedup import DedupParams, dedup_records, normalise_text  # noqa: E402

THRESHOLD, NUM_PERM, BANDS, NGRAM = 0.8, 128, 16, 5
WRAPPERS = [("hello team, forwarding this from the customer:", "best regards, the support desk"),
            ("fyi see below.", "sent from my phone"), ("ticket update:", "please do not reply to this message")]


def make_corpus(docs: int, seed: int) -> tuple[list[str], list[int]]:
    """Texts and the family each belongs to (near-duplicates share a family; -1 = standalone)."""
    rng = random.Random(seed)
    vocabulary = [f"w{k}" for k in range(40000)]
    weights = [1 / (k + 10) for k in range(len(vocabulary))]
    pool = rng.choices(vocabulary, weights, k=docs * 160)
    texts, families, position = [], [], 0
    while len(texts) < docs:
        length = rng.randint(120, 180)
        base = pool[position:position + length]
        position = (position + length) % (len(pool) - 200)
        family = len(texts)
        texts.append(" ".join(base))
        families.append(family)
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 4)):
                if len(texts) < docs:
                    texts.append(variant(base, rng, vocabulary))
                    families.append(family)
    return texts, families


def variant(words: list[str], rng: random.Random, vocabulary: list[str]) -> str:
    words = list(words)
    kind = rng.choice(["substitute", "insert", "delete", "reorder", "wrap", "format"])
    edits = rng.choice([1, 1, 2, 3, 5, 8])
    if kind == "substitute":
        for _ in range(edits):
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
    elif kind == "insert":
        for _ in range(edits):
            words.insert(rng.randrange(len(words)), rng.choice(vocabulary))
    elif kind == "delete":
        for _ in range(edits):
            del words[rng.randrange(len(words))]
    elif kind == "reorder":
        cut = rng.randrange(20, len(words) - 20)
        words = words[cut:] + words[:cut]
    elif kind == "wrap":
        head, tail = rng.choice(WRAPPERS)
        return f"{head}\n\n{' '.join(words)}\n\n{tail}"
    if kind == "format" or rng.random() < 0.3:
        text = " ".join(w.upper() if rng.random() < 0.1 else w for w in words)
        return text.replace(" ", "  ", 5).replace(" ", ", ", 3) + "!"
    return " ".join(words)


def shingles(text: str) -> set[str]:
    words = normalise_text(text).split()
    if len(words) < NGRAM:
        return {" ".join(words)} if words else set()
    return {" ".join(words[k:k + NGRAM]) for k in range(len(words) - NGRAM + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def true_pairs(sets: list[set], families: list[int], minimum: float) -> dict[tuple[int, int], float]:
    members: dict[int, list[int]] = {}
    for index, family in enumerate(families):
        members.setdefault(family, []).append(index)
    pairs = {}
    for group in members.values():
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                value = jaccard(sets[group[x]], sets[group[y]])
                if value >= minimum:
                    pairs[(group[x], group[y])] = value
    return pairs


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


def clusters_from_candidates(sets: list[set], candidates) -> list[int]:
    uf = UnionFind(len(sets))
    for i, j in candidates:
        if i != j and jaccard(sets[i], sets[j]) >= THRESHOLD:
            uf.union(i, j)
    return [uf.find(i) for i in range(len(sets))]


def run_adapterops(texts: list[str], workers: int) -> list[int]:
    frame = pd.DataFrame({"id": [str(k) for k in range(len(texts))], "text": texts}, dtype=object)   # the strings as they are
    table = dedup_records(frame, DedupParams(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, keep="first"),
                          text_columns=("text",), workers=workers)
    return table["cluster_id"].astype(int).tolist()


def run_datasketch(texts: list[str]) -> list[int]:
    """The documented usage: one MinHash per document, update_batch, MinHashLSH insert then query."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(BANDS, NUM_PERM // BANDS))
    sets, minhashes = [], []
    for key, text in enumerate(texts):
        shingle_set = shingles(text)
        sets.append(shingle_set)
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingle_set])
        minhashes.append(m)
        lsh.insert(key, m)
    candidates = ((key, other) for key, m in enumerate(minhashes) for other in lsh.query(m) if other > key)
    return clusters_from_candidates(sets, candidates)


def run_rensa(texts: list[str]) -> list[int]:
    """rensa: RMinHash.from_token_sets for all documents, RMinHashLSH insert_many + query_all."""
    from rensa import RMinHash, RMinHashLSH

    sets = [shingles(text) for text in texts]
    minhashes = RMinHash.from_token_sets([list(s) for s in sets], num_perm=NUM_PERM, seed=1)
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    lsh.insert_many(minhashes)
    candidates = ((key, other) for key, found in enumerate(lsh.query_all(minhashes)) for other in found if other > key)
    return clusters_from_candidates(sets, candidates)


def quality(clusters: list[int], sets: list[set], truth: dict[tuple[int, int], float]) -> dict:
    """Recall on true pairs at J >= 0.85, and merges below 0.6 (record vs its cluster's first member)."""
    found = sum(clusters[i] == clusters[j] for (i, j), value in truth.items() if value >= 0.85)
    wanted = sum(value >= 0.85 for value in truth.values())
    false_merges = sum(1 for k, root in enumerate(clusters) if root != k and jaccard(sets[k], sets[root]) < 0.6)
    return {"recall@0.85": found / wanted if wanted else 1.0, "pairs@0.85": wanted,
            "merged<0.6": false_merges, "removed": sum(root != k for k, root in enumerate(clusters))}


def timed(name: str, run, *args) -> tuple[float, list[int]]:
    started = time.perf_counter()
    clusters = run(*args)
    seconds = time.perf_counter() - started
    print(f"  {name:<22} {seconds:8.2f} s", flush=True)
    return seconds, clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the generated corpus")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="threads for the AdapterOps kernels")
    parser.add_argument("--skip-datasketch", action="store_true", help="leave out the slow documented-usage peer")
    args = parser.parse_args()
    texts, families = make_corpus(args.docs, args.seed)
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"corpus: {len(texts)} documents, {words:.0f} words on average, seed {args.seed}")
    run_adapterops(texts[:2000], args.workers)   # compile the kernels (numba caches them on disk)
    results = {"adapterops": timed("adapterops", run_adapterops, texts, args.workers),
               "rensa": timed("rensa", run_rensa, texts)}
    if not args.skip_datasketch:
        results["datasketch"] = timed("datasketch documented", run_datasketch, texts)
    sets = [shingles(t) for t in texts]
    truth = true_pairs(sets, families, 0.0)
    ours = results["adapterops"][0]
    print(f"\n{'pipeline':<22} {'seconds':>8} {'vs ours':>8} {'recall@0.85':>12} {'pairs':>7} {'merged<0.6':>11} {'removed':>8}")
    for name, (seconds, clusters) in results.items():
        q = quality(clusters, sets, truth)
        print(f"{name:<22} {seconds:8.2f} {seconds / ours:7.1f}x {q['recall@0.85']:12.4f} {q['pairs@0.85']:7d} "
              f"{q['merged<0.6']:11d} {q['removed']:8d}")
    histogram = np.histogram(list(truth.values()), bins=[0, 0.6, 0.8, 0.85, 0.9, 0.95, 1.0001])[0]
    print("\nplanted pairs by exact Jaccard [0,.6) [.6,.8) [.8,.85) [.85,.9) [.9,.95) [.95,1]:", histogram.tolist())


if __name__ == "__main__":
    main()
