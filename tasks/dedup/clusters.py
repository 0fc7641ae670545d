"""Exact and MinHash near-duplicate removal: one row per input record, nothing lost.

Raw text → normalised UTF-8 → word (or character) n-gram hashes → MinHash signatures in
compiled, GIL-free kernels (tasks/dedup/kernels.py), then LSH bands (the buckets of datasketch's
`MinHashLSH`, taken straight from the band groups; `build_lsh_index` builds that index), exact-Jaccard
verification of every candidate, union-find clusters and a deterministic keeper. Signatures use
datasketch's `affine32` scheme (MurmurHash3 fmix32 pre-mix, then a*h+b mod 2^32), so they are
interchangeable with `datasketch.MinHash(scheme="affine32")`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapterops.config import DedupConfig
from adapterops.errors import AdapterOpsError
from tasks.dedup import kernels
from tasks.dedup.lsh import candidate_pairs
from tasks.dedup.minhash import minhash_signatures, normalise_texts, shingle_values, text_keys, token_hashes
from tasks.records.arrow_arrays import strings, to_bools
from tasks.records.conversation import conversation_of, role_tagged_text

if TYPE_CHECKING:   # pandas is imported where used: the dedup command starts without it
    import pandas as pd





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
    messages = frame["messages"].to_numpy(dtype=object, na_value=None) if _conversational(frame.columns, text_columns) \
        else None
    if not all(_is_arrow_string(frame[c]) for c in text_columns):
        return with_conversation_texts(record_texts(frame, text_columns), messages)
    arrays = [pc.fill_null(pa.array(frame[c]).cast(pa.large_string()), "") for c in text_columns]
    joined = arrays[0] if len(arrays) == 1 else pc.binary_join_element_wise(*arrays, pa.scalar(" ", pa.large_string()))
    return with_conversation_texts(joined, messages)


CONVERSATION_TEXT_COLUMNS = ("prompt", "completion")


def _conversational(columns, text_columns: tuple[str, ...]) -> bool:
    """A corpus records file (compared by prompt and completion) with conversations in its `messages` column."""
    return tuple(text_columns) == CONVERSATION_TEXT_COLUMNS and "messages" in columns


def with_conversation_texts(texts, messages):
    """texts, with each conversation's row replaced by its role-tagged text (every message and tool call);
    one-turn records (messages null) keep prompt + completion, so their sketches stay what they were."""
    if messages is None:
        return texts
    values = messages.tolist() if hasattr(messages, "tolist") else list(messages)
    rows = [i for i, m in enumerate(values) if isinstance(m, str) and m]
    if not rows:
        return texts
    arrow = isinstance(texts, (pa.Array, pa.ChunkedArray))
    out = texts.to_pylist() if arrow else list(texts)
    for i in rows:
        out[i] = role_tagged_text(conversation_of({"messages": values[i], "tools": None}))
    return pa.array(out, pa.large_string()) if arrow else out


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


def sketch_records(frame: pd.DataFrame, params: DedupConfig, text_columns: tuple[str, ...] = ("prompt", "completion"),
                   workers: int = 1, id_column: str = "id", source_column: str = "source") -> Sketches:
    """Normalise, shingle and MinHash every record of a frame (one shard)."""
    sources = (frame[source_column].astype(object).where(frame[source_column].notna(), None).to_numpy(dtype=object)
               if source_column in frame else None)
    return _sketch(compared_texts(frame, text_columns), frame[id_column].astype(str).to_numpy(dtype=object),
                   _timestamps(frame["timestamp"] if "timestamp" in frame else None, len(frame)), sources, params, workers)


def sketch_table(table: pa.Table, params: DedupConfig, text_columns: tuple[str, ...] = ("prompt", "completion"),
                 workers: int = 1, id_column: str = "id", source_column: str = "source") -> Sketches:
    """sketch_records for an Arrow table (a JSONL block, a Parquet batch): texts from their UTF-8 buffers, no pandas."""
    texts = _joined_texts(table, text_columns)
    if _conversational(table.column_names, text_columns):
        texts = with_conversation_texts(texts, table["messages"].to_pylist())
    ids = object_array(as_text(table[id_column]))
    ids[ids == None] = "None"   # noqa: E711 (elementwise) as astype(str) writes a missing id
    names = table.column_names
    sources = object_array(table[source_column]) if source_column in names else None
    stamps = table["timestamp"].to_pandas() if "timestamp" in names else None
    return _sketch(texts, ids, _timestamps(stamps, table.num_rows), sources, params, workers)


def _joined_texts(table: pa.Table, text_columns: tuple[str, ...]):
    """The compared text of each row: its text columns joined by a space (missing values as empty text)."""
    if len(text_columns) == 1:
        return as_text(table[text_columns[0]])    # nulls become empty texts in normalise_texts
    arrays = [pc.fill_null(as_text(table[c]), "") for c in text_columns]
    return pc.binary_join_element_wise(*arrays, pa.scalar(" ", pa.large_string()))


def object_array(column) -> np.ndarray:
    """An Arrow column's values as a numpy object array (Arrow's own to_numpy would import pandas for text)."""
    values = np.empty(len(column), dtype=object)
    values[:] = column.to_pylist()
    return values


def as_text(column) -> pa.Array:
    """A column as one text array: text as it is, numbers and booleans written out, other values by str()."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    try:
        return column.cast(pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return strings(v if v is None else str(v) for v in column.to_pylist())


def _sketch(texts, ids: np.ndarray, timestamps: np.ndarray, sources: np.ndarray | None, params: DedupConfig,
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


def verified_pairs(sketches: Sketches, rows: np.ndarray, params: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs among `rows` (rows sharing an LSH bucket), kept when their exact Jaccard reaches the threshold."""
    pairs = candidate_pairs(sketches.signatures, rows, params)
    anchors = sketches.anchors()
    pairs = pairs[~(anchors[pairs[:, 0]] & anchors[pairs[:, 1]])]   # a previous version is already deduplicated
    left, right = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])   # one compiled signature
    jaccard = kernels.pair_jaccard(sketches.sets, sketches.set_offsets, left, right)
    keep = jaccard >= params.threshold
    return pairs[keep], jaccard[keep]


def cluster_sketches(sketches: Sketches, params: DedupConfig) -> pd.DataFrame:
    """One row per non-anchor record: id, cluster_id (its keeper's id), kept, duplicate_of, jaccard, kind."""
    import pandas as pd

    return pd.DataFrame(cluster_columns(sketches, params))


def cluster_columns(sketches: Sketches, params: DedupConfig) -> dict[str, np.ndarray]:
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
    check_keepers(kept, keeper)
    own = ~sketches.anchors()
    return {"id": ids[own], "cluster_id": ids[keeper][own], "kept": kept[own],
            "duplicate_of": np.where(kept, None, ids[keeper])[own], "jaccard": jaccard[own], "kind": kind[own]}


def check_keepers(kept: np.ndarray, keeper: np.ndarray) -> None:
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


def dedup_records(frame: pd.DataFrame, params: DedupConfig, text_columns: tuple[str, ...] = ("prompt", "completion"),
                  workers: int = 1, previous: Sketches | None = None) -> pd.DataFrame:
    """One row per input record: id, cluster_id, kept, duplicate_of, jaccard, kind (unique/exact/near).

    With `previous` (sketches stored with an earlier corpus version), its records that are not in
    this input act as anchors: a new record that duplicates one is removed in its favour.
    """
    return cluster_sketches(prepare_sketches(frame, params, text_columns, workers, previous), params)


def prepare_sketches(frame: pd.DataFrame, params: DedupConfig, text_columns: tuple[str, ...] = ("prompt", "completion"),
                     workers: int = 1, previous: Sketches | None = None) -> Sketches:
    """Sketches of the input records, after any previous-version anchors."""
    return add_anchors(sketch_records(frame, params, text_columns, workers), previous, params.num_perm)


def empty_sketches(num_perm: int) -> Sketches:
    return Sketches(np.empty(0, dtype=object), np.empty((0, 2), np.uint64), np.empty(0, np.int64),
                    np.empty(0, np.int64), np.empty((0, num_perm), np.uint32), np.empty(0, np.uint32),
                    np.zeros(1, np.int64))


def check_unique_ids(ids: np.ndarray, hint: str = "quarantine duplicate ids at ingest first") -> None:
    if len(set(ids.tolist())) == len(ids):
        return
    seen: set = set()
    repeated = next(i for i in ids.tolist() if i in seen or seen.add(i))
    raise AdapterOpsError(f"dedup needs unique ids, and id {repeated!r} appears more than once; {hint}.")


def add_anchors(current: Sketches, previous: Sketches | None, num_perm: int,
                hint: str = "quarantine duplicate ids at ingest first") -> Sketches:
    """The run's sketches (ids checked unique), after the previous version's records that are not among them."""
    check_unique_ids(current.ids, hint)
    anchors = reusable_previous(previous, current.ids.astype(str), num_perm)
    return concat_sketches([anchors, current]) if anchors is not None else current


