"""Exact and MinHash near-duplicate removal: one row per input record, nothing lost.

Raw text → normalised UTF-8 → word (or character) n-gram hashes → MinHash signatures in
compiled, GIL-free kernels (tasks/dedup_kernels.py), then LSH bands (the buckets of datasketch's
`MinHashLSH`, taken straight from the band groups; `build_lsh_index` builds that index), exact-Jaccard
verification of every candidate, union-find clusters and a deterministic keeper. Signatures use
datasketch's `affine32` scheme (MurmurHash3 fmix32 pre-mix, then a*h+b mod 2^32), so they are
interchangeable with `datasketch.MinHash(scheme="affine32")`.
"""

from __future__ import annotations

import unicodedata
import re
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain, compress, starmap
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapterops.errors import AdapterOpsError
from tasks import dedup_kernels as kernels
from tasks.arrow_arrays import from_numpy, strings, to_bools
from tasks.record_batches import BATCH_ROWS

if TYPE_CHECKING:   # pandas and datasketch are imported where used: the dedup command starts without pandas
    import pandas as pd
    from datasketch import MinHashLSH

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_MAX32 = np.iinfo(np.uint32).max
SCHEME = "affine32"


@dataclass(frozen=True)
class DedupParams:
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    keep: str = "longest"
    seed: int = 1
    shingle: str = "word"
    source_priority: tuple[str, ...] = ()   # keep="source_priority": most preferred source first

    def __post_init__(self):
        object.__setattr__(self, "source_priority", tuple(self.source_priority))


# --- text → shingle hashes --------------------------------------------------------------------------

def normalise_text(text: str) -> str:
    """NFKC, case-folded, punctuation removed, whitespace collapsed: variants become equal."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def _ranges(offsets: np.ndarray, workers: int) -> list[tuple[int, int]]:
    """Contiguous document ranges with about equal work (by offsets) for `workers` threads."""
    docs = len(offsets) - 1
    parts = max(1, min(workers, docs)) if docs else 1
    targets = np.linspace(offsets[0], offsets[-1], parts + 1)[1:-1]
    cuts = [0, *np.searchsorted(offsets[1:], targets, side="left").tolist(), docs]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _run_ranges(kernel, offsets: np.ndarray, workers: int, *args) -> None:
    ranges = _ranges(offsets, workers)
    if len(ranges) <= 1:
        for a, b in ranges:
            kernel(*args, a, b)
        return
    with ThreadPoolExecutor(len(ranges)) as pool:
        list(pool.map(lambda r: kernel(*args, *r), ranges))


@dataclass(frozen=True)
class NormalisedTexts:
    """Normalised UTF-8 texts in one buffer; document d is buffer[starts[d]:ends[d]]."""
    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def text(self, d: int) -> str:
        return self.buffer[self.starts[d]:self.ends[d]].tobytes().decode("utf-8")


def normalise_texts(texts, workers: int = 1) -> NormalisedTexts:
    """normalise_text for many texts: ASCII in a compiled kernel, other scripts through unicodedata.

    texts: a list of str, or an Arrow string array, whose UTF-8 buffer is read as it is (no Python
    string is made for an ASCII text).
    """
    raw, offsets = _arrow_utf8(texts) if isinstance(texts, (pa.Array, pa.ChunkedArray)) else _joined_utf8(texts)
    out = np.empty(max(len(raw), 1), dtype=np.uint8)
    ends = np.zeros(len(offsets) - 1, dtype=np.int64)
    _run_ranges(kernels.normalise_ascii_into, offsets, workers, raw, offsets, out, ends)
    return NormalisedTexts(out, offsets[:-1].copy(), ends)


def _joined_utf8(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts' UTF-8 bytes in one buffer, non-ASCII ones normalised first, with per-text offsets."""
    prepared = [t if t.isascii() else normalise_text(t) for t in texts]
    joined = "".join(prepared)
    lengths = np.fromiter(map(len, prepared), dtype=np.int64, count=len(prepared))
    if not joined.isascii():
        for index in (k for k, t in enumerate(prepared) if not t.isascii()):
            lengths[index] = len(prepared[index].encode("utf-8"))
    offsets = np.zeros(len(prepared) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(joined.encode("utf-8"), dtype=np.uint8), offsets


def _arrow_utf8(texts) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string array's UTF-8 buffer and offsets (nulls as empty texts, non-ASCII ones normalised first)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = pc.fill_null(texts, strings([""]).cast(texts.type)[0])
    other = ~to_bools(pc.string_is_ascii(texts))
    if other.any():
        mask = from_numpy(other)
        replaced = strings(normalise_text(t) for t in texts.filter(mask).to_pylist()).cast(texts.type)
        texts = pc.replace_with_mask(texts, mask, replaced)
    _, offsets, data = texts.buffers()
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offsets, dtype=width)[texts.offset:texts.offset + len(texts) + 1].astype(np.int64)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, offsets


def token_hashes(texts: NormalisedTexts, shingle: str = "word", workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One 64-bit hash per word (or per character), flattened, with per-document offsets."""
    if shingle not in ("word", "char"):
        raise AdapterOpsError(f"dedup.shingle must be 'word' or 'char', not {shingle!r}.")
    counter, writer = ((kernels.word_counts_into, kernels.word_hashes_into) if shingle == "word"
                       else (kernels.char_counts_into, kernels.char_hashes_into))
    counts = np.empty(len(texts.starts), dtype=np.int64)
    bounds = np.append(texts.starts, texts.ends[-1:] if len(texts.ends) else [0])
    _run_ranges(counter, bounds, workers, texts.buffer, texts.starts, texts.ends, counts)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    tokens = np.empty(int(offsets[-1]), dtype=np.uint64)
    _run_ranges(writer, offsets, workers, texts.buffer, texts.starts, texts.ends, tokens, offsets)
    return tokens, offsets


def shingle_values(tokens: np.ndarray, token_offsets: np.ndarray, ngram: int, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A 32-bit value for every window of `ngram` tokens; a document shorter than that is one shingle of all of them.

    These values are both a document's Jaccard set (unsorted, a repeated shingle repeats) and its
    MinHash input. 32 bits halve the memory of the largest array dedup keeps; a collision inside one
    pair's ~300 shingles has a chance of about 1e-5 and then moves its Jaccard by one shingle.
    """
    counts = kernels.ngram_counts(np.diff(token_offsets), ngram)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np.uint32)
    _run_ranges(kernels.ngram_values_into, offsets, workers, tokens, token_offsets, ngram, offsets, values)
    return values, offsets


def text_keys(tokens: np.ndarray, offsets: np.ndarray, workers: int = 1) -> np.ndarray:
    """(documents, 2) uint64 keys of each document's token sequence: equal normalised texts, equal keys."""
    keys = np.empty((len(offsets) - 1, 2), dtype=np.uint64)
    _run_ranges(kernels.token_keys_into, offsets, workers, tokens, offsets, keys)
    return keys


def fold_to_32(hashes: np.ndarray) -> np.ndarray:
    """64-bit shingle hashes (signatures folders written before values were 32-bit) folded as shingle_values does."""
    return (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32)


# --- shingle hashes → MinHash signatures ----------------------------------------------------------

def permutations(num_perm: int, seed: int) -> np.ndarray:
    """The (a, b) arrays datasketch's affine32 scheme draws for this seed."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return np.array([a, b])


def minhash_signatures(values: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int, workers: int = 1) -> np.ndarray:
    """One affine32 MinHash signature per document (rows) of its shingle values; empty documents get all-max rows."""
    signatures = np.full((len(offsets) - 1, num_perm), _MAX32, dtype=np.uint32)
    a, b = permutations(num_perm, seed)
    _run_ranges(kernels.minhash_into, offsets, workers, values, offsets, a, b, signatures)
    return signatures


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


def build_lsh_index(signatures: np.ndarray, rows_to_index: np.ndarray, params: DedupParams,
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


def candidate_pairs(signatures: np.ndarray, rows_to_index: np.ndarray, params: DedupParams) -> np.ndarray:
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


# --- verification and clusters ---------------------------------------------------------------------

@dataclass(frozen=True)
class Sketches:
    """What clustering needs of each record, without its text: the stored form for incremental runs."""
    ids: np.ndarray            # str
    text_keys: np.ndarray      # (n, 2) uint64: equal normalised texts, equal keys
    lengths: np.ndarray        # normalised length in bytes (keeper "longest")
    timestamps: np.ndarray     # int64 ns since epoch, max when unknown (keeper "earliest")
    signatures: np.ndarray     # (n, num_perm) uint32
    sets: np.ndarray           # 32-bit shingle values, flattened, in text order (exact Jaccard)
    set_offsets: np.ndarray
    anchor: np.ndarray = field(default=None)  # rows from a previous corpus version: keepers, no output row
    sources: np.ndarray = field(default=None)  # str or None per row (keeper by source priority, report)

    def take(self, rows: np.ndarray) -> "Sketches":
        starts, ends = self.set_offsets[rows], self.set_offsets[rows + 1]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        pieces = [self.sets[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
        sets = np.concatenate(pieces) if pieces else np.zeros(0, np.uint32)
        return Sketches(self.ids[rows], self.text_keys[rows], self.lengths[rows], self.timestamps[rows],
                        self.signatures[rows], sets, offsets, self.anchors()[rows], self.source_values()[rows])

    def anchors(self) -> np.ndarray:
        return self.anchor if self.anchor is not None else np.zeros(len(self.ids), dtype=bool)

    def source_values(self) -> np.ndarray:
        return self.sources if self.sources is not None else np.full(len(self.ids), None, dtype=object)


def release_memory() -> None:
    """Hand freed memory back to the OS (Arrow's pool, glibc's heap) between stages of a big run.

    Both allocators keep freed blocks for reuse; without this, a stage's peak sits on top of what
    the previous stage already freed.
    """
    import ctypes

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc: nothing to trim
        pass


def concat_sketches(parts: list[Sketches]) -> Sketches:
    """Sketches of several shards as one, in order.

    Consumes `parts` (the list is emptied): each part is copied into the preallocated result and
    released, so the peak is the result plus one part, not twice the whole.
    """
    if len(parts) == 1:
        return parts.pop()
    rows = sum(len(p.ids) for p in parts)
    width = parts[0].signatures.shape[1] if parts else 0
    total_sets = sum(len(p.sets) for p in parts)
    out = Sketches(np.empty(rows, dtype=object), np.empty((rows, 2), np.uint64), np.empty(rows, np.int64),
                   np.empty(rows, np.int64), np.empty((rows, width), np.uint32), np.empty(total_sets, np.uint32),
                   np.zeros(rows + 1, np.int64), np.empty(rows, dtype=bool), np.empty(rows, dtype=object))
    row, position = 0, 0
    while parts:
        part = parts.pop(0)
        n, m = len(part.ids), len(part.sets)
        for name in ("ids", "text_keys", "lengths", "timestamps", "signatures"):
            getattr(out, name)[row:row + n] = getattr(part, name)
        out.anchor[row:row + n] = part.anchors()
        out.sources[row:row + n] = part.source_values()
        out.sets[position:position + m] = part.sets
        out.set_offsets[row + 1:row + n + 1] = part.set_offsets[1:] + position
        row, position = row + n, position + m
        del part
        release_memory()
    return out


def record_texts(frame: pd.DataFrame, text_columns: tuple[str, ...]) -> list[str]:
    """The text a record is compared by: its text columns joined by a space (missing values as empty text)."""
    columns = [[v if type(v) is str else str(v) for v in frame[c].to_numpy(dtype=object, na_value="")]
               for c in text_columns]
    return columns[0] if len(columns) == 1 else [" ".join(parts) for parts in zip(*columns)]


def compared_texts(frame: pd.DataFrame, text_columns: tuple[str, ...]):
    """record_texts, as one Arrow array when every text column holds Arrow strings (as Parquet batches do).

    Then no Python string is made per record: a million records of ~1 KB would take a GB more.
    """
    if not all(_is_arrow_string(frame[c]) for c in text_columns):
        return record_texts(frame, text_columns)
    arrays = [pc.fill_null(pa.array(frame[c]).cast(pa.large_string()), "") for c in text_columns]
    return arrays[0] if len(arrays) == 1 else pc.binary_join_element_wise(*arrays, pa.scalar(" ", pa.large_string()))


def _is_arrow_string(column: pd.Series) -> bool:
    import pandas as pd

    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    return isinstance(dtype, pd.ArrowDtype) and (pa.types.is_string(dtype.pyarrow_dtype)
                                                 or pa.types.is_large_string(dtype.pyarrow_dtype))


def _timestamps(values: pd.Series | None, rows: int) -> np.ndarray:
    """Nanoseconds since the epoch of each timestamp; max where there is none or it does not parse."""
    if values is None:
        return np.full(rows, np.iinfo(np.int64).max, dtype=np.int64)
    import pandas as pd

    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    stamps = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(parsed.isna().to_numpy(), np.iinfo(np.int64).max, stamps)


def sketch_records(frame: pd.DataFrame, params: DedupParams, text_columns: tuple[str, ...] = ("prompt", "completion"),
                   workers: int = 1, id_column: str = "id", source_column: str = "source") -> Sketches:
    """Normalise, shingle and MinHash every record of a frame (one shard)."""
    sources = (frame[source_column].astype(object).where(frame[source_column].notna(), None).to_numpy(dtype=object)
               if source_column in frame else None)
    return _sketch(compared_texts(frame, text_columns), frame[id_column].astype(str).to_numpy(dtype=object),
                   _timestamps(frame["timestamp"] if "timestamp" in frame else None, len(frame)), sources, params, workers)


def sketch_table(table: pa.Table, params: DedupParams, text_columns: tuple[str, ...] = ("prompt", "completion"),
                 workers: int = 1, id_column: str = "id", source_column: str = "source") -> Sketches:
    """sketch_records for an Arrow table (a JSONL block, a Parquet batch): texts from their UTF-8 buffers, no pandas."""
    texts = _joined_texts(table, text_columns)
    ids = object_array(_as_text(table[id_column]))
    ids[ids == None] = "None"   # noqa: E711 (elementwise) as astype(str) writes a missing id
    names = table.column_names
    sources = object_array(table[source_column]) if source_column in names else None
    stamps = table["timestamp"].to_pandas() if "timestamp" in names else None
    return _sketch(texts, ids, _timestamps(stamps, table.num_rows), sources, params, workers)


def _joined_texts(table: pa.Table, text_columns: tuple[str, ...]):
    """The compared text of each row: its text columns joined by a space (missing values as empty text)."""
    if len(text_columns) == 1:
        return _as_text(table[text_columns[0]])    # nulls become empty texts in normalise_texts
    arrays = [pc.fill_null(_as_text(table[c]), "") for c in text_columns]
    return pc.binary_join_element_wise(*arrays, pa.scalar(" ", pa.large_string()))


def object_array(column) -> np.ndarray:
    """An Arrow column's values as a numpy object array (Arrow's own to_numpy would import pandas for text)."""
    values = np.empty(len(column), dtype=object)
    values[:] = column.to_pylist()
    return values


def _as_text(column) -> pa.Array:
    """A column as one text array: text as it is, numbers and booleans written out, other values by str()."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    try:
        return column.cast(pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return strings(v if v is None else str(v) for v in column.to_pylist())


def _sketch(texts, ids: np.ndarray, timestamps: np.ndarray, sources: np.ndarray | None, params: DedupParams,
            workers: int) -> Sketches:
    normalised = normalise_texts(texts, workers)
    tokens, token_offsets = token_hashes(normalised, params.shingle, workers)
    sets, set_offsets = shingle_values(tokens, token_offsets, params.ngram, workers)
    keys = text_keys(tokens, token_offsets, workers)
    del tokens
    signatures = minhash_signatures(sets, set_offsets, params.num_perm, params.seed, workers)
    return Sketches(ids, keys, normalised.ends - normalised.starts, timestamps, signatures, sets, set_offsets,
                    sources=sources)


def source_ranks(sources: np.ndarray, priority: tuple[str, ...]) -> np.ndarray:
    """Position of each row's source in `priority` (0 = most preferred); unlisted or missing sources rank last."""
    rank_of = {name: k for k, name in enumerate(priority)}
    return np.fromiter((rank_of.get(s, len(priority)) if isinstance(s, str) else len(priority) for s in sources),
                       dtype=np.int64, count=len(sources))


def keeper_rank(sketches: Sketches, keep: str, priority: tuple[str, ...] = ()) -> np.ndarray:
    """Rank of each row as a cluster's keeper (lower wins); anchors first, ties fall back to input order.

    keep="source_priority" ranks by the source's place in `priority`, then longest, then input order.
    """
    position = np.arange(len(sketches.ids))
    keys = [position]
    if keep == "longest":
        keys.append(-sketches.lengths)
    elif keep == "earliest":
        keys.append(sketches.timestamps)
    elif keep == "first":
        pass
    elif keep == "source_priority":
        if not priority:
            raise AdapterOpsError("dedup.keep source_priority needs dedup.source_priority: list the sources, most preferred first.")
        keys += [-sketches.lengths, source_ranks(sketches.source_values(), priority)]
    else:
        raise AdapterOpsError(f"dedup.keep must be longest, earliest, first or source_priority, not {keep!r}.")
    return np.lexsort((*keys, ~sketches.anchors())).argsort()


def exact_groups(text_keys: np.ndarray) -> np.ndarray:
    """Group number per row; rows with equal normalised text share it."""
    order = np.lexsort((text_keys[:, 1], text_keys[:, 0]))
    ordered = text_keys[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    groups = np.empty(len(order), dtype=np.int64)
    groups[order] = np.cumsum(starts) - 1
    return groups


def verified_pairs(sketches: Sketches, rows: np.ndarray, params: DedupParams) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs among `rows` (rows sharing an LSH bucket), kept when their exact Jaccard reaches the threshold."""
    pairs = candidate_pairs(sketches.signatures, rows, params)
    anchors = sketches.anchors()
    pairs = pairs[~(anchors[pairs[:, 0]] & anchors[pairs[:, 1]])]   # a previous version is already deduplicated
    left, right = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])   # one compiled signature
    jaccard = kernels.pair_jaccard(sketches.sets, sketches.set_offsets, left, right)
    keep = jaccard >= params.threshold
    return pairs[keep], jaccard[keep]


def cluster_sketches(sketches: Sketches, params: DedupParams) -> pd.DataFrame:
    """One row per non-anchor record: id, cluster_id (its keeper's id), kept, duplicate_of, jaccard, kind."""
    import pandas as pd

    return pd.DataFrame(cluster_columns(sketches, params))


def cluster_columns(sketches: Sketches, params: DedupParams) -> dict[str, np.ndarray]:
    """cluster_sketches' columns as numpy arrays, in input order (no pandas)."""
    n = len(sketches.ids)
    groups = exact_groups(sketches.text_keys)
    _, representatives = np.unique(groups, return_index=True)
    nonempty = sketches.set_offsets[representatives + 1] > sketches.set_offsets[representatives]
    near, _ = verified_pairs(sketches, np.sort(representatives[nonempty]), params)
    exact_left, exact_right = representatives[groups], np.arange(n)   # groups number 0.., first rows in order
    left = np.concatenate([exact_left, near[:, 0]])
    right = np.concatenate([exact_right, near[:, 1]])
    roots = kernels.union_find_roots(n, left, right)
    rank = keeper_rank(sketches, params.keep, params.source_priority)
    order = np.lexsort((rank, roots))
    is_first = np.ones(n, dtype=bool)
    is_first[1:] = roots[order][1:] != roots[order][:-1]
    keeper_of_root = np.zeros(n, dtype=np.int64)
    keeper_of_root[roots[order][is_first]] = order[is_first]
    keeper = keeper_of_root[roots]
    kept = keeper == np.arange(n)
    same_text = groups == groups[keeper]
    removed = np.flatnonzero(~kept)
    jaccard = np.ones(n)
    jaccard[removed] = kernels.pair_jaccard(sketches.sets, sketches.set_offsets, removed, keeper[removed])
    kind = np.where(kept, "unique", np.where(same_text, "exact", "near")).astype(object)
    ids = sketches.ids.astype(str)
    check_accounting(kept, keeper)
    own = ~sketches.anchors()
    return {"id": ids[own], "cluster_id": ids[keeper][own], "kept": kept[own],
            "duplicate_of": np.where(kept, None, ids[keeper])[own], "jaccard": jaccard[own], "kind": kind[own]}


def check_accounting(kept: np.ndarray, keeper: np.ndarray) -> None:
    """Every record is kept or removed in favour of a kept one (an input record or a previous version's):
    none is removed for a record that is gone too, so kept + removed = input with nothing lost."""
    if len(kept) != len(keeper) or not kept[keeper[~kept]].all():
        raise AdapterOpsError("internal accounting error in dedup: a record was removed in favour of one that was "
                              "not kept; please report it.")


def reusable_previous(previous: Sketches | None, current_ids: np.ndarray, params_num_perm: int) -> Sketches | None:
    """Previous-version sketches as anchors: those whose id is not an input record of this run."""
    if previous is None or len(previous.ids) == 0:
        return None
    if previous.signatures.shape[1] != params_num_perm:
        raise AdapterOpsError(f"previous signatures have {previous.signatures.shape[1]} permutations, this run "
                              f"{params_num_perm}; run without the previous version or with the same num_perm.")
    known = pc.is_in(strings(previous.ids.astype(str).tolist()), value_set=strings(current_ids.tolist()))
    rows = np.flatnonzero(~to_bools(known))
    taken = previous.take(rows)
    return replace(taken, anchor=np.ones(len(rows), dtype=bool))


def dedup_records(frame: pd.DataFrame, params: DedupParams, text_columns: tuple[str, ...] = ("prompt", "completion"),
                  workers: int = 1, previous: Sketches | None = None) -> pd.DataFrame:
    """One row per input record: id, cluster_id, kept, duplicate_of, jaccard, kind (unique/exact/near).

    With `previous` (sketches stored with an earlier corpus version), its records that are not in
    this input act as anchors: a new record that duplicates one is removed in its favour.
    """
    return cluster_sketches(prepare_sketches(frame, params, text_columns, workers, previous), params)


def prepare_sketches(frame: pd.DataFrame, params: DedupParams, text_columns: tuple[str, ...] = ("prompt", "completion"),
                     workers: int = 1, previous: Sketches | None = None) -> Sketches:
    """Sketches of the input records, after any previous-version anchors."""
    return add_anchors(sketch_records(frame, params, text_columns, workers), previous, params.num_perm)


def add_anchors(current: Sketches, previous: Sketches | None, num_perm: int,
                hint: str = "quarantine duplicate ids at ingest first") -> Sketches:
    """The run's sketches (ids checked unique), after the previous version's records that are not among them."""
    check_unique_ids(current.ids, hint)
    anchors = reusable_previous(previous, current.ids.astype(str), num_perm)
    return concat_sketches([anchors, current]) if anchors is not None else current


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

SKETCH_ARRAYS = ("text_keys", "lengths", "timestamps", "signatures", "sets", "set_offsets")
SHARD_ROWS = BATCH_ROWS
TEXT_COLUMNS = ("prompt", "completion")


def empty_sketches(num_perm: int) -> Sketches:
    return Sketches(np.empty(0, dtype=object), np.empty((0, 2), np.uint64), np.empty(0, np.int64),
                    np.empty(0, np.int64), np.empty((0, num_perm), np.uint32), np.empty(0, np.uint32),
                    np.zeros(1, np.int64))


def sketch_file(records_path, params: DedupParams, text_columns: tuple[str, ...] = TEXT_COLUMNS, workers: int = 1,
                id_column: str = "id", source_column: str = "source", on_batch=None, batch_rows: int = SHARD_ROWS,
                options: dict[str, str] | None = None) -> Sketches:
    """Sketches of every record of the file, read as Arrow batches (only the sketches are kept); on_batch(rows) reports progress.

    options: the command-line option that names each column, for the error when one is missing.
    """
    from tasks.record_batches import arrow_batches

    parts = []
    columns = sketch_columns(records_path, text_columns, id_column, source_column, options)
    for table in arrow_batches(records_path, columns, batch_rows):
        parts.append(sketch_table(table, params, text_columns, workers, id_column, source_column))
        if on_batch:
            on_batch(table.num_rows)
    release_memory()
    return concat_sketches(parts) if parts else empty_sketches(params.num_perm)


def check_unique_ids(ids: np.ndarray, hint: str = "quarantine duplicate ids at ingest first") -> None:
    if len(set(ids.tolist())) == len(ids):
        return
    seen: set = set()
    repeated = next(i for i in ids.tolist() if i in seen or seen.add(i))
    raise AdapterOpsError(f"dedup needs unique ids, and id {repeated!r} appears more than once; {hint}.")


def with_previous(current: Sketches, previous_signatures: str | None, num_perm: int,
                  hint: str = "quarantine duplicate ids at ingest first") -> Sketches:
    """add_anchors with a previous version's signatures folder (if one is given)."""
    previous = load_sketches(previous_signatures, mmap=True) if previous_signatures else None
    return add_anchors(current, previous, num_perm, hint)


def sketch_columns(records_path, text_columns: tuple[str, ...], id_column: str = "id",
                   source_column: str = "source", options: dict[str, str] | None = None) -> list[str]:
    """The columns sketching reads: id, texts, and source and timestamp when the file has them.

    options: the command-line option that names each column, for the error when one is missing.
    """
    from tasks.record_batches import column_names

    present = column_names(records_path)
    missing = [c for c in (id_column, *text_columns) if c not in present]
    if missing:
        option = (options or {}).get(missing[0])
        fix = f"name the right one with {option}" if option else "name the id and text columns that the file has"
        raise AdapterOpsError(f"{records_path} has no column {missing[0]!r} (columns: {', '.join(map(str, present))}); "
                              f"{fix}.")
    optional = [c for c in (source_column, "timestamp") if c in present and c not in (id_column, *text_columns)]
    return [id_column, *dict.fromkeys(text_columns), *optional]


def write_outputs(records_path, sketches: Sketches, params: DedupParams, out_dir,
                  text_columns: tuple[str, ...] = TEXT_COLUMNS, id_column: str = "id", signatures: bool = True) -> dict:
    """Cluster the sketches and write kept.parquet, duplicates.parquet, report.json and (with `signatures`) signatures/.

    The kept rows and the report's samples are taken by position from the records read for sketching
    (JSONL) or from a second pass over the file in batches (Parquet, CSV): its texts are never all
    in memory at once unless they were already.
    """
    from dataclasses import asdict
    from pathlib import Path

    from adapterops.storage import write_json
    from tasks.dedup_report import build_report, report_rows
    from tasks.record_batches import take_rows, write_rows

    out_dir = Path(out_dir)
    table = cluster_columns(sketches, params) if len(sketches.ids) else empty_columns()
    release_memory()
    write_duplicates(table, out_dir / "duplicates.parquet")
    sources = sketches.source_values()[~sketches.anchors()]
    if signatures:
        save_sketches(sketches, out_dir / "signatures")
    write_rows(records_path, out_dir / "kept.parquet", np.flatnonzero(table["kept"]))
    release_memory()
    shown = report_rows(table)
    texts = (dict(zip(table["id"][shown].tolist(), _sample_texts(take_rows(records_path, shown, list(dict.fromkeys(text_columns))),
                                                                 text_columns))) if len(shown) else {})
    bands_rows = list(choose_bands(params.threshold, params.num_perm))
    report = build_report(table, texts, sources if any(s is not None for s in sources) else None,
                          asdict(params) | {"bands_rows": bands_rows})
    write_json(report, out_dir / "report.json")
    counts = report["counts"]
    return {"kept_records": str(out_dir / "kept.parquet"), "duplicates": str(out_dir / "duplicates.parquet"),
            "report": str(out_dir / "report.json"), "signatures": str(out_dir / "signatures") if signatures else None,
            "input": counts["input"], "kept": counts["kept"], "exact": counts["exact"], "near": counts["near"],
            "bands_rows": bands_rows}


def empty_columns() -> dict[str, np.ndarray]:
    return {"id": np.zeros(0, str), "cluster_id": np.zeros(0, str), "kept": np.zeros(0, bool),
            "duplicate_of": np.zeros(0, object), "jaccard": np.zeros(0), "kind": np.zeros(0, object)}


def write_duplicates(table: dict[str, np.ndarray], path) -> None:
    """duplicates.parquet, atomically: one row per input record, in input order."""
    import pyarrow.parquet as pq

    from adapterops.storage import _staging

    def text(name: str) -> pa.Array:
        return strings(table[name].tolist()).cast(pa.string())

    arrow = pa.table({"id": text("id"), "cluster_id": text("cluster_id"), "kept": from_numpy(table["kept"]),
                      "duplicate_of": text("duplicate_of"), "jaccard": from_numpy(table["jaccard"].astype(np.float64)),
                      "kind": text("kind")})
    staging = _staging(path)
    pq.write_table(arrow, staging)
    staging.replace(path)


def _sample_texts(samples: pa.Table, text_columns: tuple[str, ...]) -> list[str]:
    """The compared text of each sampled record (text columns joined by a space), as Python strings."""
    columns = [["" if v is None else v for v in _as_text(samples[c]).to_pylist()] for c in text_columns]
    return columns[0] if len(columns) == 1 else [" ".join(parts) for parts in zip(*columns)]


def publish_dedup_report(summary: dict) -> None:
    """The report as a Prefect markdown artifact (logged when run outside a flow)."""
    import json
    from pathlib import Path

    from adapterops.reporting import publish_markdown
    from tasks.dedup_report import report_markdown

    report = json.loads(Path(summary["report"]).read_text(encoding="utf-8"))
    publish_markdown("dedup-report", "Duplicate removal report", report_markdown(report))


def dedup_file(records_path: str, params: DedupParams, stage_dir, previous_signatures: str | None = None,
               workers: int = 1, batch_rows: int = SHARD_ROWS) -> dict:
    """kept.parquet, duplicates.parquet (one row per input record), report.json and signatures/ under stage_dir.

    previous_signatures: the signatures/ folder of the last corpus version; its records that are not
    in this input are kept in favour of new duplicates of them. The records file is read batch_rows at a time.
    """
    current = sketch_file(records_path, params, TEXT_COLUMNS, workers, batch_rows=batch_rows)
    summary = write_outputs(records_path, with_previous(current, previous_signatures, params.num_perm), params,
                            stage_dir, TEXT_COLUMNS)
    publish_dedup_report(summary)
    return summary


def save_sketches(sketches: Sketches, folder) -> str:
    """signatures.npy and friends plus ids.parquet (id, source) in `folder` (no pickle), via a staging folder."""
    import shutil
    from pathlib import Path

    from adapterops.storage import space_for

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with space_for(folder, lambda: sum(getattr(sketches, name).nbytes for name in SKETCH_ARRAYS)):
            staging.mkdir(parents=True)
            for name in SKETCH_ARRAYS:
                np.save(staging / f"{name}.npy", getattr(sketches, name), allow_pickle=False)
            import pyarrow.parquet as pq

            sources = [s if s is None or isinstance(s, str) else str(s) for s in sketches.source_values().tolist()]
            pq.write_table(pa.table({"id": strings(sketches.ids.astype(str).tolist()).cast(pa.string()),
                                     "source": strings(sources).cast(pa.string())}),
                           staging / "ids.parquet")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
    return str(folder)


def load_sketches(folder, mmap: bool = False) -> Sketches:
    """Sketches saved by save_sketches (arrays memory-mapped with mmap); the error says what to do when the folder is not one."""
    from pathlib import Path

    folder = Path(folder)
    missing = [n for n in (*SKETCH_ARRAYS, "ids") if not (folder / (n + (".parquet" if n == "ids" else ".npy"))).is_file()]
    if missing:
        raise AdapterOpsError(f"{folder} holds no stored dedup signatures (missing {', '.join(missing)}); "
                              "pass the signatures folder of an earlier dedup run or corpus version, or run without one.")
    arrays = {n: np.load(folder / f"{n}.npy", allow_pickle=False, mmap_mode="r" if mmap else None) for n in SKETCH_ARRAYS}
    import pyarrow.parquet as pq

    names = pq.read_table(folder / "ids.parquet")
    ids = object_array(_as_text(names["id"]))
    sources = (object_array(names["source"])
               if "source" in names.column_names else None)   # folders written before sources were stored have none
    if arrays["sets"].dtype != np.uint32:   # stored before sets were 32-bit: fold them
        arrays["sets"] = fold_to_32(np.asarray(arrays["sets"]))
    return Sketches(ids=ids, sources=sources, **arrays)


def warm_up() -> None:
    """Deduplicate a few generated records every way the command and curation do (JSONL and Parquet, word and
    character shingles, a previous version, text columns as Python strings), so that numba compiles and caches
    each kernel's signatures now: `make install` runs it, and the first real run loads them instead of compiling."""
    import json
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from tasks.record_batches import jsonl_table

    base = "the customer reports that the invoice for the annual plan lists twelve seats instead of nine"
    texts = [base, base.upper() + "!", base + " thanks", "Überweisung für die Rechnung", "", "short"] * 3
    with tempfile.TemporaryDirectory(prefix="adapterops-warm-up-") as folder:
        folder = Path(folder)
        for name in ("old", "new"):
            (folder / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"{name}{k}", "text": t, "source": "s"}) + "\n"
                                                          for k, t in enumerate(texts)), encoding="utf-8")
        pq.write_table(jsonl_table(folder / "new.jsonl"), folder / "new.parquet")
        for path, shingle in ((folder / "old.jsonl", "char"), (folder / "new.parquet", "word"), (folder / "old.jsonl", "word")):
            params = DedupParams(shingle=shingle)
            summary = write_outputs(path, sketch_file(path, params, ("text",), workers=2), params,
                                    folder / f"{path.suffix[1:]}-{shingle}", ("text",))
        current = with_previous(sketch_file(folder / "new.jsonl", params, ("text",)), summary["signatures"], params.num_perm)
        write_outputs(folder / "new.jsonl", current, params, folder / "incremental", ("text",), signatures=False)
        cluster_columns(load_sketches(summary["signatures"], mmap=True), params)   # read-only arrays (sharded flow)
    import pandas as pd

    dedup_records(pd.DataFrame({"id": [str(k) for k in range(len(texts))], "prompt": texts, "completion": "ok"}),
                  DedupParams(), workers=2)


if __name__ == "__main__":   # `make install` runs this: compile and cache the kernels before the first real run
    warm_up()
