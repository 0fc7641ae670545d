"""Arrow arrays from numpy and Python strings, and back, built from buffers.

pyarrow's own conversions (`pa.array`, `pa.scalar`, `to_numpy` of text, a `take` by a numpy array)
first ask its pandas shim whether the value is a pandas object, which imports pandas: 0.3 s of CPU
in a command that does not otherwise use it. These build the buffers themselves.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_TYPES = {np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64(), np.dtype(np.uint32): pa.uint32()}


def from_numpy(values: np.ndarray) -> pa.Array:
    """A numeric or boolean numpy array as an Arrow array without nulls."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def to_bools(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array (nulls as False) as a numpy bool array."""
    validity, data = array.buffers()
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    values = bits[array.offset:array.offset + len(array)].astype(bool)
    if validity is not None and array.null_count:
        values &= to_bools(array.is_valid())
    return values


def strings(values) -> pa.Array:
    """Python strings (None for a missing value) as an Arrow large_string array."""
    values = list(values)
    present = [v if v is not None else "" for v in values]
    joined = "".join(present)
    data = joined.encode("utf-8")
    lengths = np.fromiter(map(len, present), dtype=np.int64, count=len(present))
    if len(data) != len(joined):   # some are not ASCII: count their bytes
        lengths = np.fromiter((len(v.encode("utf-8")) for v in present), dtype=np.int64, count=len(present))
    offsets = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if missing.any() else None
    return pa.Array.from_buffers(pa.large_string(), len(values), [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=int(missing.sum()))
