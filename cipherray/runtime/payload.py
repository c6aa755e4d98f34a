"""Size of a message payload in bytes, as counted by the ledger.

Arrays and anything else with an integer ``nbytes`` (a ``CipherArray`` gives its wire size,
the length of ``to_bytes()``) are counted without serialising them again; containers are
summed; other objects are counted by their pickle."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np


def payload_nbytes(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, bytes | bytearray | memoryview):
        return len(obj)
    if isinstance(obj, tuple | list):
        return sum(payload_nbytes(x) for x in obj)
    if isinstance(obj, dict):
        return sum(payload_nbytes(k) + payload_nbytes(v) for k, v in obj.items())
    if isinstance(obj, int | float | bool | np.generic) or obj is None:
        return 8
    nb = getattr(obj, "nbytes", None)
    if isinstance(nb, int | np.integer):
        return int(nb)
    try:
        return len(pickle.dumps(obj, protocol=5))
    except Exception:
        return 0
