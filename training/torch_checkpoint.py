"""Read a PyTorch state dict into numpy arrays, without PyTorch and without running its pickle.

The teacher's ImageNet weights ship as a PyTorch file in the legacy (pre-1.6, non-zip) format:
five pickles in a row (magic number, protocol, system info, the state dict whose tensors refer
to storages by key, the list of storage keys), then each storage's raw bytes in that order, each
after its element count. PyTorch itself is a multi-gigabyte install that training on JAX or
TensorFlow does not need, and its general unpickler can run code from the file; this one can only
build an ordered dict of arrays: any other class the pickle names is refused.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class CheckpointError(ValueError):
    """The file is not a state dict this reader understands."""


@dataclass(frozen=True)
class _TensorRef:
    storage_key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage_key: str, offset: int, shape, stride, *_unused) -> _TensorRef:
    return _TensorRef(storage_key, int(offset), tuple(shape), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__(handle)
        self.storages: dict[str, tuple[np.dtype, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise CheckpointError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> str:
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage" or storage_type not in STORAGE_DTYPES:
            raise CheckpointError(f"unsupported storage {pid[:2]!r}")
        self.storages[key] = (np.dtype(STORAGE_DTYPES[storage_type]), int(numel))
        return key


def read_state_dict(path: Path) -> OrderedDict[str, np.ndarray]:
    """The tensors of a legacy-format PyTorch state dict, in file order, as numpy arrays."""
    with path.open("rb") as handle:
        if _StateDictUnpickler(handle).load() != LEGACY_MAGIC:
            raise CheckpointError(f"{path} is not a legacy PyTorch file")
        for _header in range(2):  # protocol version, system info: plain values
            _StateDictUnpickler(handle).load()
        restricted = _StateDictUnpickler(handle)
        tensors = restricted.load()
        keys = _StateDictUnpickler(handle).load()
        data: dict[str, np.ndarray] = {}
        for key in keys:
            dtype, numel = restricted.storages[key]
            count = int(np.frombuffer(handle.read(8), "<i8")[0])
            if count != numel:
                raise CheckpointError(f"storage {key}: {count} elements, {numel} announced")
            data[key] = np.frombuffer(handle.read(count * dtype.itemsize), dtype)
    if not isinstance(tensors, OrderedDict):
        raise CheckpointError(f"{path} holds a {type(tensors).__name__}, not a state dict")
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, ref in tensors.items():
        flat = data[ref.storage_key]
        item = flat.dtype.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            flat[ref.offset :], ref.shape, tuple(s * item for s in ref.stride), writeable=False
        ).copy()
    return out
