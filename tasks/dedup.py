"""Exact and MinHash near-duplicate removal: one row per input record, nothing lost.

Signatures are computed for all documents at once in numpy with datasketch's `affine32`
permutation scheme (MurmurHash3 pre-mix, then a*h+b mod 2^32), so they are interchangeable with
`datasketch.MinHash(scheme="affine32")`; datasketch's `MinHashLSH` is the index.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xxhash
from datasketch import LeanMinHash, MinHashLSH

from adapterops.errors import AdapterOpsError

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
SCHEME = "affine32"


@dataclass(frozen=True)
class DedupParams:
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    keep: str = "longest"
    seed: int = 1


def normalise_text(text: str) -> str:
    """NFKC, case-folded, punctuation removed, whitespace collapsed: variants become equal."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def exact_key(normalised: str) -> str:
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=16).hexdigest()


def shingle_hashes(texts: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes of normalised texts, flattened, with per-document offsets.

    Words are hashed once per distinct word (stable across runs); n-grams combine word hashes
    in numpy. A text shorter than n words is one shingle of all its words; an empty text has none.
    """
    words_per_doc = [t.split() for t in texts]
    lengths = np.fromiter((len(w) for w in words_per_doc), dtype=np.int64, count=len(texts))
    flat = [w for words in words_per_doc for w in words]
    codes, uniques = pd.factorize(pd.Series(flat, dtype=object), sort=False)
    word_hash = np.fromiter((xxhash.xxh64_intdigest(u.encode("utf-8")) for u in uniques),
                            dtype=np.uint64, count=len(uniques))
    tokens = word_hash[codes] if len(flat) else np.zeros(0, dtype=np.uint64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(texts) else np.zeros(0, np.int64)
    counts = np.where(lengths >= ngram, lengths - ngram + 1, np.minimum(lengths, 1))
    width = np.minimum(lengths, ngram)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    total = int(offsets[-1])
    doc_of = np.repeat(np.arange(len(texts)), counts)
    first = starts[doc_of] + (np.arange(total) - offsets[:-1][doc_of])
    span = width[doc_of]
    hashes = np.zeros(total, dtype=np.uint64)
    for k in range(ngram):
        live = k < span
        hashes[live] = hashes[live] * _MIX + tokens[first[live] + k]
    return hashes, offsets


def _fmix32(values: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def permutations(num_perm: int, seed: int) -> np.ndarray:
    """The (a, b) arrays datasketch's affine32 scheme draws for this seed."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return np.array([a, b])


def minhash_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int,
                       chunk: int = 1 << 18) -> np.ndarray:
    """One affine32 MinHash signature per document (rows); empty documents get all-max rows."""
    docs = len(offsets) - 1
    signatures = np.full((docs, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    folded = _fmix32((hashes ^ (hashes >> np.uint64(32))).astype(np.uint32))
    a, b = permutations(num_perm, seed)
    doc_starts = offsets[:-1]
    nonempty = np.flatnonzero(offsets[1:] > doc_starts)
    # Process whole documents per chunk so each min-reduction sees complete shingle runs.
    i = 0
    while i < len(nonempty):
        j = int(np.searchsorted(offsets[nonempty + 1], offsets[nonempty[i]] + chunk, side="right"))
        j = max(j, i + 1)
        block = nonempty[i:j]
        lo, hi = int(offsets[block[0]]), int(offsets[block[-1] + 1])
        permuted = folded[lo:hi, None] * a[None, :] + b[None, :]
        signatures[block] = np.minimum.reduceat(permuted, offsets[block] - lo, axis=0)
        i = j
    return signatures


def choose_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands x rows with high recall at the threshold; candidates are verified, so extra ones only cost time.

    Picks the most rows per band whose probability of making a pair at the threshold a candidate
    is at least 0.94 (0.8 and 128 permutations give 16 x 8).
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= 0.94:
            best = (bands, rows)
    return best


def candidate_pairs(signatures: np.ndarray, active: np.ndarray, params: DedupParams) -> set[tuple[int, int]]:
    """Pairs of row indices that share at least one LSH band in datasketch's MinHashLSH."""
    bands, rows = choose_bands(params.threshold, params.num_perm)
    lsh = MinHashLSH(num_perm=params.num_perm, params=(bands, rows))
    with lsh.insertion_session() as session:
        for index in active:
            session.insert(int(index), LeanMinHash(seed=params.seed, hashvalues=signatures[index], scheme=SCHEME),
                           check_duplication=False)
    pairs: set[tuple[int, int]] = set()
    for table in lsh.hashtables:
        for key in table.keys():
            members = sorted(table.get(key))
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    pairs.add((members[x], members[y]))
    return pairs


def exact_jaccard(hashes: np.ndarray, offsets: np.ndarray, i: int, j: int) -> float:
    left = np.unique(hashes[offsets[i]:offsets[i + 1]])
    right = np.unique(hashes[offsets[j]:offsets[j + 1]])
    union = len(np.union1d(left, right))
    return len(np.intersect1d(left, right, assume_unique=True)) / union if union else 1.0


class _UnionFind:
    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


def _keeper_order(frame: pd.DataFrame, normalised: list[str], keep: str) -> np.ndarray:
    """Rank of each row as a cluster's keeper (lower wins); ties fall back to input order."""
    position = np.arange(len(frame))
    if keep == "longest":
        primary = -np.array([len(t) for t in normalised])
    elif keep == "earliest":
        primary = pd.to_datetime(frame["timestamp"], errors="coerce", utc=True).rank(method="first", na_option="bottom").to_numpy()
    elif keep == "first":
        primary = position
    else:
        raise AdapterOpsError(f"dedup.keep must be longest, earliest or first, not {keep!r}.")
    return np.lexsort((position, primary)).argsort()


def dedup_records(frame: pd.DataFrame, params: DedupParams, text_columns: tuple[str, ...] = ("prompt", "completion")) -> pd.DataFrame:
    """One row per input record: id, cluster_id, kept, duplicate_of, jaccard, kind (unique/exact/near)."""
    if frame["id"].duplicated().any():
        raise AdapterOpsError("dedup needs unique ids; quarantine duplicate ids at ingest first.")
    texts = frame[list(text_columns)].fillna("").astype(str).agg(" ".join, axis=1).tolist()
    normalised = [normalise_text(t) for t in texts]
    rank = _keeper_order(frame, normalised, params.keep)
    n = len(frame)
    uf = _UnionFind(n)
    kind = np.array(["unique"] * n, dtype=object)
    exact_groups: dict[str, int] = {}
    for index, key in enumerate(exact_key(t) for t in normalised):
        if key in exact_groups:
            uf.union(exact_groups[key], index)
            kind[index] = "exact"
        else:
            exact_groups[key] = index
    representatives = np.array(sorted(exact_groups.values()), dtype=np.int64)
    hashes, offsets = shingle_hashes(normalised, params.ngram)
    signatures = minhash_signatures(hashes, offsets, params.num_perm, params.seed)
    active = representatives[offsets[representatives + 1] > offsets[representatives]]
    for i, j in sorted(candidate_pairs(signatures, active, params)):
        if exact_jaccard(hashes, offsets, i, j) >= params.threshold:
            uf.union(i, j)
    roots = np.array([uf.find(i) for i in range(n)])
    keeper_of_root: dict[int, int] = {}
    for index in np.argsort(rank, kind="stable"):
        keeper_of_root.setdefault(int(roots[index]), int(index))
    ids = frame["id"].astype(str).to_numpy()
    keeper = np.array([keeper_of_root[int(r)] for r in roots])
    kept = keeper == np.arange(n)
    jaccard = np.ones(n)
    for index in np.flatnonzero(~kept):
        if normalised[index] != normalised[keeper[index]]:
            kind[index] = "near"
            jaccard[index] = exact_jaccard(hashes, offsets, index, keeper[index])
        else:
            kind[index] = "exact"
    kind[kept] = "unique"
    result = pd.DataFrame({"id": ids, "cluster_id": ids[keeper], "kept": kept,
                           "duplicate_of": np.where(kept, None, ids[keeper]), "jaccard": jaccard, "kind": kind})
    if len(result) != n or int(result["kept"].sum()) + int((~result["kept"]).sum()) != n:
        raise AdapterOpsError("internal accounting error in dedup: kept + removed != input; please report it.")
    return result


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

def dedup_file(records_path: str, params: DedupParams, stage_dir) -> dict:
    """kept.parquet and duplicates.parquet (one row per input record) under stage_dir."""
    from pathlib import Path

    from adapterops.storage import write_parquet

    frame = pd.read_parquet(records_path)
    table = dedup_records(frame, params) if len(frame) else pd.DataFrame(
        columns=["id", "cluster_id", "kept", "duplicate_of", "jaccard", "kind"])
    stage_dir = Path(stage_dir)
    write_parquet(table, stage_dir / "duplicates.parquet")
    kept_ids = set(table.loc[table["kept"], "id"])
    write_parquet(frame[frame["id"].astype(str).isin(kept_ids)], stage_dir / "kept.parquet")
    counts = table["kind"].value_counts().to_dict()
    return {"kept_records": str(stage_dir / "kept.parquet"), "duplicates": str(stage_dir / "duplicates.parquet"),
            "input": len(frame), "kept": len(kept_ids), "exact": int(counts.get("exact", 0)),
            "near": int(counts.get("near", 0)), "bands_rows": list(choose_bands(params.threshold, params.num_perm))}
