"""MinHash signatures → candidate pairs: the LSH bands of datasketch's `MinHashLSH`.

Candidates come from the band groups directly (records sharing a band's rows); `build_lsh_index`
builds the same buckets as a datasketch index, and a test shows both give the same pairs.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import chain, compress, starmap
from typing import TYPE_CHECKING

import numpy as np

from adapterops.config import DedupConfig
from tasks.dedup import kernels
from tasks.dedup.minhash import SCHEME

if TYPE_CHECKING:   # datasketch is imported where used: the dedup command starts without it
    from datasketch import MinHashLSH


# --- signatures → candidate pairs (datasketch MinHashLSH) ------------------------------------------

def choose_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands x rows with high recall at the threshold; candidates are verified, so extra ones only cost time.

    Picks the most rows per band whose probability of making a pair at the threshold a candidate
    is at least 0.94 (0.8 and 128 permutations give 16 x 8).
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if bands >= 2 and 1 - (1 - threshold ** rows) ** bands >= 0.94:
            best = (bands, rows)
    return best


def band_groups(block: np.ndarray, shared_only: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rows of one band grouped by equal values: (order, group starts, group ends) into that order.

    Sorting by a 64-bit fingerprint of the band's values brings equal rows together without a Python
    loop per row. With shared_only, only groups of two or more rows. None in the (about 1 in 2^40 per
    band at a million rows) case of two different value rows with one fingerprint: the caller then
    groups by the values themselves.
    """
    fingerprint = np.zeros(len(block), dtype=np.uint64)
    for column in range(block.shape[1]):
        fingerprint = fingerprint * np.uint64(0x9E3779B97F4A7C15) + block[:, column].astype(np.uint64) + np.uint64(column + 1)
    return groups_by_fingerprint(fingerprint, lambda left, right: bool((block[left] == block[right]).all()), shared_only)


def groups_by_fingerprint(fingerprint: np.ndarray, equal, shared_only: bool = True
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """band_groups from the band's fingerprints; equal(left rows, right rows) says whether rows with one
    fingerprint hold the same values (None when some do not). Rows of a group come in any order."""
    order = np.argsort(fingerprint)
    ordered = fingerprint[order]
    same_print = ordered[1:] == ordered[:-1]
    boundary = np.flatnonzero(same_print)
    if len(boundary) and not equal(order[boundary], order[boundary + 1]):
        return None
    starts = np.flatnonzero(np.concatenate([[True], ~same_print]))
    ends = np.append(starts[1:], len(order))
    if shared_only:
        wide = ends - starts >= 2
        starts, ends = starts[wide], ends[wide]
    return order, starts, ends


def build_lsh_index(signatures: np.ndarray, rows_to_index: np.ndarray, params: DedupConfig,
                    shared_only: bool = True, storage_config: dict | None = None) -> MinHashLSH:
    """datasketch MinHashLSH over the given signature rows (keys: row numbers), filled in bulk.

    With shared_only, a band's bucket is stored only when two or more rows fall into it: singleton
    buckets cannot produce a candidate pair, and leaving them out keeps the index small and fast
    (an incremental run rebuilds it from stored signatures). The first row goes through datasketch's
    own insertion session with a LeanMinHash, which records the permutation scheme in the index;
    inserting it again into its buckets changes nothing, as the band tables store sets. The other
    rows are only in the band tables: `query()` finds them, `in` and `remove()` do not.
    """
    from datasketch import LeanMinHash, MinHashLSH

    bands, rows = choose_bands(params.threshold, params.num_perm)
    lsh = MinHashLSH(num_perm=params.num_perm, params=(bands, rows), storage_config=storage_config)
    if len(rows_to_index) == 0:
        return lsh
    rows_to_index = np.asarray(rows_to_index, dtype=np.int64)
    first = int(rows_to_index[0])
    def grouped(band: int):
        # one band's columns at a time: never a copy of all the signatures
        block = signatures[rows_to_index, band * rows:(band + 1) * rows]
        return block, band_groups(block, shared_only)

    with lsh.insertion_session() as session, ThreadPoolExecutor(1) as pool:
        session.insert(first, LeanMinHash(seed=params.seed, hashvalues=signatures[first], scheme=SCHEME),
                       check_duplication=False)
        upcoming = pool.submit(grouped, 0)
        for band, table in enumerate(lsh.hashtables):
            block, groups = upcoming.result()
            if band + 1 < bands:   # numpy sorts the next band without the GIL while this one fills the table
                upcoming = pool.submit(grouped, band + 1)
            if groups is None:
                _fill_band_by_keys(table, block, rows_to_index)
            else:
                _fill_band(table, block, rows_to_index, *groups)
    return lsh


def _fill_band(table, block: np.ndarray, rows_to_index: np.ndarray, order: np.ndarray, starts: np.ndarray,
               ends: np.ndarray) -> None:
    """One band's groups into its table: each group's bucket key (the big-endian bytes of its values) and rows.

    Groups of one size are inserted together by a C-level map over (key, row, row, ...) tuples, so
    there is no Python loop per bucket.
    """
    keys = band_key_list(block[order[starts]])
    members = rows_to_index[order]
    sizes = ends - starts
    insert = partial(table.insert, buffer=True)
    for size in np.unique(sizes).tolist():
        chosen = sizes == size
        columns = members[starts[chosen][:, None] + np.arange(size)].T.tolist()
        deque(starmap(insert, zip(compress(keys, chosen), *columns)), maxlen=0)


def band_key_list(block: np.ndarray) -> list[bytes]:
    """MinHashLSH's bucket key of each row of a band's values: the values' big-endian bytes."""
    swapped = np.ascontiguousarray(block, dtype=">u4")
    return swapped.view(np.dtype((np.void, swapped.shape[1] * 4))).ravel().tolist()


def _fill_band_by_keys(table, block: np.ndarray, rows_to_index: np.ndarray) -> None:
    """One band's buckets grouped by their exact keys in a dict (the fingerprint-collision fallback)."""
    buckets: dict[bytes, list[int]] = {}
    for key, row in zip(band_key_list(block), rows_to_index.tolist()):
        buckets.setdefault(key, []).append(row)
    for key, rows_in_bucket in buckets.items():
        table.insert(key, *rows_in_bucket, buffer=True)


ALL_PAIRS_UP_TO = 64   # larger buckets give a star and a chain, not every pair (see kernels.bucket_pairs)


def lsh_candidate_pairs(lsh: MinHashLSH) -> np.ndarray:
    """(i, j) row pairs, i < j, sharing a bucket, read from the index's storage; sorted, unique.

    Every pair of a bucket of up to ALL_PAIRS_UP_TO rows; in a larger one, each row with the
    bucket's first row and with its neighbour.
    """
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for table in lsh.hashtables:
        buckets = list(map(table.get, table.keys()))
        offsets = np.zeros(len(buckets) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, buckets), dtype=np.int64, count=len(buckets)), out=offsets[1:])
        members = np.fromiter(chain.from_iterable(buckets), dtype=np.int64, count=int(offsets[-1]))
        a, b = kernels.bucket_pairs(members, offsets, ALL_PAIRS_UP_TO)
        left.append(a)
        right.append(b)
    return _unique_pairs(left, right)


def candidate_pairs(signatures: np.ndarray, rows_to_index: np.ndarray, params: DedupConfig) -> np.ndarray:
    """(i, j) row pairs, i < j, sharing a band's bucket: the pairs lsh_candidate_pairs reads from
    build_lsh_index's MinHashLSH (tested equal), from the band groups directly; sorted, unique.

    A one-off run needs the buckets' pairs, not an index to query later, and filling datasketch's
    index and reading it back cost more than the rest of clustering.
    """
    bands, rows = choose_bands(params.threshold, params.num_perm)
    rows_to_index = np.asarray(rows_to_index, dtype=np.int64)
    fingerprints = np.empty((bands, len(rows_to_index)), dtype=np.uint64)   # band_groups' fingerprints, in one pass
    kernels.band_fingerprints_into(signatures, rows_to_index, rows, fingerprints)

    def band_pairs(band: int) -> tuple[np.ndarray, np.ndarray]:
        columns = slice(band * rows, (band + 1) * rows)

        def equal(left: np.ndarray, right: np.ndarray) -> bool:
            return bool((signatures[rows_to_index[left], columns] == signatures[rows_to_index[right], columns]).all())

        groups = groups_by_fingerprint(fingerprints[band], equal)
        order, starts, ends = groups if groups is not None else _groups_by_values(signatures[rows_to_index, columns])
        sizes = ends - starts
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        positions = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1])
        return kernels.bucket_pairs(rows_to_index[order[positions]], offsets, ALL_PAIRS_UP_TO)

    with ThreadPoolExecutor(2) as pool:   # numpy's sorts and the pairs kernel run without the GIL
        found = list(pool.map(band_pairs, range(bands))) if len(rows_to_index) else []
    return _unique_pairs([a for a, _ in found], [b for _, b in found])


def _groups_by_values(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """band_groups (shared only) by the band's values themselves: the fingerprint-collision fallback."""
    _, inverse = np.unique(block, axis=0, return_inverse=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    ordered = inverse.ravel()[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], len(order))
    wide = ends - starts >= 2
    return order, starts[wide], ends[wide]


def _unique_pairs(left: list[np.ndarray], right: list[np.ndarray]) -> np.ndarray:
    i = np.concatenate(left) if left else np.zeros(0, np.int64)
    j = np.concatenate(right) if right else np.zeros(0, np.int64)
    if not len(i):
        return np.zeros((0, 2), dtype=np.int64)
    width = int(j.max()) + 1
    codes = np.unique(i * width + j)
    return np.column_stack([codes // width, codes % width])




# --- signatures → nearest indexed row (a lookup, not a pairwise scan) --------------------------------

def nearest_neighbours(queries: np.ndarray, index: np.ndarray, params: DedupConfig, verify_pairs,
                       per_band: int = 4, verify: int = 8, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """For each query signature row, the most similar index row among its LSH candidates and their similarity:
    (rows, values), row -1 and value 0 where no index row shares a band's bucket with it.

    The index rows' band fingerprints are sorted once per band (params.threshold's bands x rows, as dedup
    chooses them); each query looks its fingerprints up by binary search and takes at most per_band rows of each
    bucket; the `verify` rows it shares most buckets with are verified by verify_pairs(query_rows, index_rows),
    which returns their exact similarity. Queries go chunk at a time, so memory stays bounded.
    """
    bands, rows = choose_bands(params.threshold, params.num_perm)
    best_row = np.full(len(queries), -1, dtype=np.int64)
    best = np.zeros(len(queries), dtype=np.float64)
    total = len(index)
    if total == 0 or len(queries) == 0:
        return best_row, best
    prints = np.empty((bands, total), dtype=np.uint64)
    kernels.band_fingerprints_into(index, np.arange(total, dtype=np.int64), rows, prints)
    orders = np.argsort(prints, axis=1, kind="stable")
    ordered = np.take_along_axis(prints, orders, axis=1)
    del prints
    for start in range(0, len(queries), chunk):
        chosen = np.arange(start, min(start + chunk, len(queries)), dtype=np.int64)
        query_prints = np.empty((bands, len(chosen)), dtype=np.uint64)
        kernels.band_fingerprints_into(queries, chosen, rows, query_prints)
        left, right = [], []
        for band in range(bands):
            low = np.searchsorted(ordered[band], query_prints[band], "left")
            count = np.searchsorted(ordered[band], query_prints[band], "right") - low
            take = np.minimum(count, per_band)
            if not take.any():
                continue
            # a large bucket is entered at a place that moves with the query and the band, so its bands
            # offer different rows rather than the same first few every time
            start_at = (chosen.astype(np.uint64) * np.uint64(2654435761) + np.uint64(band * 40503)) \
                % np.maximum(count, 1).astype(np.uint64)
            firsts = np.cumsum(take) - take
            step = np.arange(int(take.sum())) - np.repeat(firsts, take)
            positions = np.repeat(low, take) + (np.repeat(start_at.astype(np.int64), take) + step) % np.repeat(
                np.maximum(count, 1), take)
            left.append(np.repeat(chosen, take))
            right.append(orders[band][positions])
        if not left:
            continue
        codes, shared = np.unique(np.concatenate(left) * total + np.concatenate(right), return_counts=True)
        query_rows, index_rows = codes // total, codes % total
        order = np.lexsort((-shared, query_rows))          # per query, most shared buckets first
        query_rows, index_rows = query_rows[order], index_rows[order]
        group_start = np.flatnonzero(np.concatenate([[True], query_rows[1:] != query_rows[:-1]]))
        rank = np.arange(len(query_rows)) - np.repeat(group_start, np.diff(np.append(group_start, len(query_rows))))
        keep = rank < verify
        query_rows, index_rows = query_rows[keep], index_rows[keep]
        values = np.asarray(verify_pairs(query_rows, index_rows), dtype=np.float64)
        order = np.lexsort((-values, query_rows))
        first = np.concatenate([[True], query_rows[order][1:] != query_rows[order][:-1]])
        winners = order[first]
        best_row[query_rows[winners]] = index_rows[winners]
        best[query_rows[winners]] = values[winners]
    return best_row, best
