"""Text → normalised UTF-8 → word (or character) n-gram shingle values → MinHash signatures.

The loops run in compiled, GIL-free kernels (tasks/dedup/kernels.py) over ranges of records on
threads. Signatures use datasketch's `affine32` scheme (MurmurHash3 fmix32 pre-mix, then a*h+b mod
2^32), so they are interchangeable with `datasketch.MinHash(scheme="affine32")`.
"""

from __future__ import annotations

import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapterops.errors import AdapterOpsError
from tasks.dedup import kernels
from tasks.records.arrow_arrays import from_numpy, strings, to_bools

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_MAX32 = np.iinfo(np.uint32).max
SCHEME = "affine32"



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


