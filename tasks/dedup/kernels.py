"""Compiled inner loops of near-duplicate removal (numba, no GIL): n-gram hashing, MinHash, Jaccard.

Each kernel works on flat arrays with per-document offsets, so a caller splits documents into
ranges and runs ranges on threads. Results do not depend on how documents are split.
"""

from __future__ import annotations

import numba
import numpy as np

MIX = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def ngram_counts(lengths: np.ndarray, n: int) -> np.ndarray:
    """Shingles per document: length - n + 1, one for a document shorter than n, none when empty."""
    counts = np.empty(len(lengths), dtype=np.int64)
    for d in range(len(lengths)):
        length = lengths[d]
        counts[d] = length - n + 1 if length >= n else min(length, 1)
    return counts


@numba.njit(cache=True, nogil=True)
def ngram_values_into(tokens, token_offsets, n, shingle_offsets, out, first_doc, last_doc):
    """out[shingle] = 32-bit value of each window of n token hashes (shorter documents: all tokens).

    The window's 64-bit Horner hash is folded to 32 bits (high half XOR low half): the value the
    Jaccard sets store and the input of datasketch's affine32 scheme.
    """
    for d in range(first_doc, last_doc):
        start, stop = token_offsets[d], token_offsets[d + 1]
        width = min(n, stop - start)
        position = shingle_offsets[d]
        for s in range(start, stop - width + 1):
            h = np.uint64(0)
            for k in range(width):
                h = h * MIX + tokens[s + k]
            out[position] = np.uint32((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF))
            position += 1


@numba.njit(cache=True, nogil=True)
def _fmix32(v):
    # MurmurHash3's fmix32: datasketch's affine32 scheme mixes each 32-bit input with it.
    v ^= v >> np.uint32(16)
    v = np.uint32(v * np.uint32(0x85EBCA6B))
    v ^= v >> np.uint32(13)
    v = np.uint32(v * np.uint32(0xC2B2AE35))
    v ^= v >> np.uint32(16)
    return v


@numba.njit(cache=True, nogil=True)
def minhash_into(values, offsets, a, b, out, first_doc, last_doc):
    """out[doc, p] = min over the document's shingle values of (a[p] * fmix32(v) + b[p]) mod 2^32.

    The minimum goes into a local row as a branch-free select, which LLVM turns into SIMD over the
    permutations (ten times the speed of a compare-and-store into `out`).
    """
    perms = a.shape[0]
    row = np.empty(perms, dtype=np.uint32)
    for d in range(first_doc, last_doc):
        row[:] = out[d]
        for s in range(offsets[d], offsets[d + 1]):
            v = _fmix32(values[s])
            for p in range(perms):
                permuted = np.uint32(v * a[p] + b[p])
                row[p] = permuted if permuted < row[p] else row[p]
        out[d] = row


@numba.njit(cache=True, nogil=True)
def pair_jaccard(values, offsets, left, right):
    """Exact Jaccard of the value sets of documents left[k] and right[k]; two empty sets → 1.

    A document's values may come in any order and repeat (a repeated shingle counts once). Each
    pair goes through one open-addressing table; a slot belongs to the current pair when its stamp
    is that pair's number, so the table is never cleared.
    """
    result = np.empty(len(left), dtype=np.float64)
    largest = 1
    for k in range(len(left)):
        size = offsets[left[k] + 1] - offsets[left[k]] + offsets[right[k] + 1] - offsets[right[k]]
        largest = max(largest, size)
    bits = 1
    while (1 << bits) < 2 * largest:
        bits += 1
    mask = (1 << bits) - 1
    slots = np.empty(1 << bits, dtype=np.uint32)
    stamps = np.zeros(1 << bits, dtype=np.int64)
    owners = np.empty(1 << bits, dtype=np.uint8)      # 1: in the left set only, 2: right only, 3: both
    for k in range(len(left)):
        stamp = k + 1
        in_left = 0
        in_right = 0
        shared = 0
        for side in range(2):
            d = left[k] if side == 0 else right[k]
            mark = np.uint8(1 << side)
            for s in range(offsets[d], offsets[d + 1]):
                value = values[s]
                slot = (np.uint32(value * np.uint32(0x9E3779B1)) >> np.uint32(32 - bits)) & mask
                while stamps[slot] == stamp and slots[slot] != value:
                    slot = (slot + 1) & mask
                if stamps[slot] != stamp:
                    stamps[slot] = stamp
                    slots[slot] = value
                    owners[slot] = mark
                    if side == 0:
                        in_left += 1
                    else:
                        in_right += 1
                elif owners[slot] & mark == 0:    # first time on the right side: shared with the left
                    owners[slot] |= mark
                    in_right += 1
                    shared += 1
        union = in_left + in_right - shared
        result[k] = shared / union if union else 1.0
    return result


@numba.njit(cache=True, nogil=True)
def union_find_roots(size, left, right):
    """Root (smallest member) of each element's component after joining every (left, right) pair."""
    parent = np.arange(size)
    for k in range(len(left)):
        x, y = left[k], right[k]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            if x < y:
                parent[y] = x
            else:
                parent[x] = y
    for k in range(size):
        root = k
        while parent[root] != root:
            root = parent[root]
        parent[k] = root
    return parent


@numba.njit(cache=True, nogil=True)
def _fmix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@numba.njit(cache=True, nogil=True)
def normalise_ascii_into(buffer, offsets, out, ends, first_doc, last_doc):
    """normalise_text for ASCII bytes: lower case, every run of non-alphanumerics one space, trimmed.

    Bytes >= 0x80 count as word characters, so text already normalised by normalise_text passes
    through unchanged. Each document is written from its input start; ends[d] receives its end.
    """
    for d in range(first_doc, last_doc):
        position = offsets[d]
        pending_space = False
        for k in range(offsets[d], offsets[d + 1]):
            c = buffer[k]
            if 65 <= c <= 90:
                c += 32
            if not ((48 <= c <= 57) or (97 <= c <= 122) or c >= 128):
                pending_space = position > offsets[d]
                continue
            if pending_space:
                out[position] = 32
                position += 1
                pending_space = False
            out[position] = c
            position += 1
        ends[d] = position


@numba.njit(cache=True, nogil=True)
def word_hashes_into(text, starts, ends, out, out_offsets, first_doc, last_doc):
    """FNV-1a 64 + fmix64 hash of each space-separated word of normalised UTF-8 text."""
    for d in range(first_doc, last_doc):
        position = out_offsets[d]
        h = np.uint64(0xCBF29CE484222325)
        in_word = False
        for k in range(starts[d], ends[d]):
            c = text[k]
            if c == 32:
                if in_word:
                    out[position] = _fmix64(h)
                    position += 1
                h = np.uint64(0xCBF29CE484222325)
                in_word = False
            else:
                h = (h ^ np.uint64(c)) * np.uint64(0x100000001B3)
                in_word = True
        if in_word:
            out[position] = _fmix64(h)


@numba.njit(cache=True, nogil=True)
def word_counts_into(text, starts, ends, counts, first_doc, last_doc):
    """counts[d] = words in document d (normalised text: one space between words)."""
    for d in range(first_doc, last_doc):
        counts[d] = 0
        if ends[d] > starts[d]:
            spaces = 0
            for k in range(starts[d], ends[d]):
                if text[k] == 32:
                    spaces += 1
            counts[d] = spaces + 1


@numba.njit(cache=True, nogil=True)
def char_counts_into(text, starts, ends, counts, first_doc, last_doc):
    """counts[d] = code points in document d (UTF-8 continuation bytes are not counted)."""
    for d in range(first_doc, last_doc):
        counts[d] = 0
        for k in range(starts[d], ends[d]):
            if (text[k] & 0xC0) != 0x80:
                counts[d] += 1



@numba.njit(cache=True, nogil=True)
def char_hashes_into(text, starts, ends, out, out_offsets, first_doc, last_doc):
    """One hash per code point (its UTF-8 bytes mixed), so character n-grams work for any script."""
    for d in range(first_doc, last_doc):
        position = out_offsets[d] - 1
        for k in range(starts[d], ends[d]):
            c = np.uint64(text[k])
            if (c & np.uint64(0xC0)) != np.uint64(0x80):
                position += 1
                out[position] = np.uint64(0)
            out[position] = _fmix64((out[position] << np.uint64(8)) ^ c ^ np.uint64(0xA5A5A5A5))


@numba.njit(cache=True, nogil=True)
def token_keys_into(tokens, offsets, keys, first_doc, last_doc):
    """keys[d] = two independent 64-bit hashes of document d's token sequence: equal texts, equal keys."""
    for d in range(first_doc, last_doc):
        h1 = np.uint64(0x243F6A8885A308D3) ^ np.uint64(offsets[d + 1] - offsets[d])
        h2 = np.uint64(0x13198A2E03707344)
        for k in range(offsets[d], offsets[d + 1]):
            h1 = (h1 ^ tokens[k]) * np.uint64(0x100000001B3)
            h2 = _fmix64(h2 + tokens[k])
        keys[d, 0] = _fmix64(h1)
        keys[d, 1] = h2


@numba.njit(cache=True, nogil=True)
def band_fingerprints_into(signatures, rows, width, out):
    """out[band, k] = 64-bit fingerprint of row rows[k]'s values in that band (band_groups' formula)."""
    for k in range(len(rows)):
        row = signatures[rows[k]]
        for band in range(out.shape[0]):
            h = np.uint64(0)
            for c in range(width):
                h = h * MIX + np.uint64(row[band * width + c]) + np.uint64(c + 1)
            out[band, k] = h


@numba.njit(cache=True, nogil=True)
def bucket_pairs(members, offsets, all_pairs_up_to):
    """(smaller, larger) row pairs inside each bucket; bucket b is members[offsets[b]:offsets[b + 1]].

    A bucket of up to all_pairs_up_to rows gives every pair. A larger one (a template filled in
    thousands of times) gives a star from its smallest row plus a chain through the rows in order,
    2n - 3 pairs instead of n(n - 1)/2: enough to join a cluster whose members are all alike,
    without the quadratic pairs that would exhaust memory.
    """
    total = 0
    for b in range(len(offsets) - 1):
        size = offsets[b + 1] - offsets[b]
        total += size * (size - 1) // 2 if size <= all_pairs_up_to else 2 * size - 3
    left = np.empty(total, dtype=np.int64)
    right = np.empty(total, dtype=np.int64)
    position = 0
    for b in range(len(offsets) - 1):
        start, stop = offsets[b], offsets[b + 1]
        if stop - start <= all_pairs_up_to:
            for x in range(start, stop):
                for y in range(x + 1, stop):
                    left[position] = min(members[x], members[y])
                    right[position] = max(members[x], members[y])
                    position += 1
            continue
        rows = np.sort(members[start:stop])
        for k in range(1, len(rows)):
            left[position] = rows[0]
            right[position] = rows[k]
            position += 1
        for k in range(2, len(rows)):
            left[position] = rows[k - 1]
            right[position] = rows[k]
            position += 1
    return left, right
