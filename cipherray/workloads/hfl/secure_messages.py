"""SecAgg+ messages as plain typed data, checked on arrival.

Every message of `secure.py` between the server and a place crosses as a dict of NumPy
arrays (and, for the unmask request, one int): nothing executable, no objects. The
sender turns a `protocols/secagg/cohort.py` message into one with `message(...)`; the
receiver reads it back with `read_*`, which checks the field names, every array's
dtype and shape against the round (n clients, degree k, vector length d, the cohort's
m clients), and the client ids against what the receiver knows of the sender's
cohort. A malformed message raises `WireError` naming the sender and the step (its
message tag) before any protocol code sees it; the receiver's state is unchanged.

The round plan crosses as {members, neighbours, length, round_id}: the graph the server
sampled and the round's public identifiers. Its degree, threshold and quantiser are not
sent: every place recomputes them from the settings its own script holds (`PlanRules`)
and refuses a graph whose shape, symmetry or degree differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from cipherray.protocols.secagg import cohort as sa
from cipherray.protocols.secagg import shamir
from cipherray.protocols.secagg.graph import CommunicationGraph
from cipherray.protocols.secagg.protocol import ROUND_ID_BYTES
from cipherray.protocols.secagg.quantize import ring_dtype
from cipherray.runtime.errors import WireError

PLAN_TAG = "hfl/secagg_plan"
KEYS_TAG = "hfl/secagg_keys"
SHARES_TAG = "hfl/secagg_shares"
MASKED_TAG = "hfl/secagg_masked"
UNMASK_TAG = "hfl/secagg_unmask"

_ID = np.dtype(np.int64)
_BYTE = np.dtype(np.uint8)
_BOOL = np.dtype(bool)
_SHARE = np.dtype(shamir.SHARE_DTYPE)
MAX_CLIENTS = 1 << 24  # clients in one round


@dataclass(frozen=True)
class PlanRules:
    """The public SecAgg+ settings that the server and every place hold in their own
    script: ring bits, simulated dropout per stage, complete graph (silos) or sparse
    (population), the corrupt fraction the graph is sized for, and how to build the
    quantiser for n clients (None: the rule's vectors are integers already)."""

    bits: int
    dropout: float
    complete: bool
    corruption: float
    quantizer_of: Callable[[int, int], Any] | None


def message(value: Any) -> dict:
    """A cohort message (`KeyAdvert`, `NeighbourKeys`, ...) as a dict of its fields."""
    return {f.name: getattr(value, f.name) for f in fields(value)}


class _Reader:
    """Checks of one message from `sender` at step `step`."""

    def __init__(self, m: Any, sender: str, step: str, names: tuple[str, ...]):
        self.sender, self.step = sender, step
        if type(m) is not dict or set(m) != set(names):
            got = sorted(map(str, m)) if type(m) is dict else type(m).__name__
            raise self.error(f"expected a message with the fields {sorted(names)}, got {got}")
        self.m = m
        self.sizes: dict[str, int] = {}

    def error(self, why: str) -> WireError:
        return WireError(self.sender, self.step, f"a malformed SecAgg+ message: {why}")

    def array(self, name: str, dtype: np.dtype, shape: tuple[int | str, ...]) -> np.ndarray:
        """Field `name`: an array of `dtype` whose shape matches `shape` (ints are fixed,
        letters are sizes that must agree across the message's fields)."""
        v = self.m[name]
        if not isinstance(v, np.ndarray) or v.dtype != dtype:
            kind = v.dtype if isinstance(v, np.ndarray) else type(v).__name__
            raise self.error(f"{name} must be an array of {dtype}, not {kind}")
        if v.ndim != len(shape):
            raise self.error(f"{name} must have {len(shape)} dimensions, not {v.ndim}")
        for got, want in zip(v.shape, shape):
            if isinstance(want, str):
                want = self.sizes.setdefault(want, got)
            if got != want:
                raise self.error(f"{name} has shape {v.shape}, expected {self._shape(shape)}")
        return v

    def _shape(self, shape: tuple[int | str, ...]) -> tuple:
        return tuple(self.sizes.get(s, s) if isinstance(s, str) else s for s in shape)

    def ids(self, name: str, n: int, within: np.ndarray | None = None) -> np.ndarray:
        """Field `name`: distinct client ids in [0, n), all in `within` when given."""
        v = self.array(name, _ID, ("m",))
        if v.size and (v.min() < 0 or v.max() >= n):
            raise self.error(f"{name} holds a client id outside 0..{n - 1}")
        if np.unique(v).size != v.size:
            raise self.error(f"{name} names a client twice")
        if within is not None and not np.isin(v, within).all():
            raise self.error(f"{name} names clients that are not in the sender's cohort")
        return v


# -- the round plan ----------------------------------------------------------------------
def plan_message(members: np.ndarray, graph: CommunicationGraph, length: int, round_id: bytes):
    return {"members": np.asarray(members, _ID), "neighbours": graph.neighbours.astype(_ID),
            "length": int(length), "round_id": bytes(round_id)}  # fmt: skip


def read_plan(m: Any, sender: str, degree_of: Callable[[int], tuple[int, int]]) -> tuple:
    """(members, graph, length, round_id) of a plan message; `degree_of(n)` gives the
    (degree, threshold) the receiver expects for n clients."""
    r = _Reader(m, sender, PLAN_TAG, ("members", "neighbours", "length", "round_id"))
    members = r.array("members", _ID, ("n",))
    n = members.size
    if not 3 <= n <= MAX_CLIENTS or np.any(np.diff(members) <= 0) or members[0] < 0:
        raise r.error("members must be 3 or more distinct client ids, sorted")
    degree, threshold = degree_of(n)
    nb = r.array("neighbours", _ID, (n, degree))
    if nb.min() < 0 or nb.max() >= n:
        raise r.error("the graph names a client outside the round")
    if np.any(nb == np.arange(n)[:, None]):
        raise r.error("the graph makes a client its own neighbour")
    if np.any(np.diff(np.sort(nb, axis=1), axis=1) == 0):
        raise r.error("the graph lists a neighbour twice")
    graph = CommunicationGraph(np.ascontiguousarray(nb), threshold)
    try:
        sa.reverse_slots(graph)
    except ValueError:
        raise r.error("the graph is not symmetric") from None
    length, round_id = m["length"], m["round_id"]
    if type(length) is not int or not 1 <= length <= 1 << 31:
        raise r.error("length must be a positive int")
    if type(round_id) is not bytes or len(round_id) != ROUND_ID_BYTES:
        raise r.error(f"round_id must be {ROUND_ID_BYTES} bytes")
    return members, graph, length, round_id


# -- step 1: keys ------------------------------------------------------------------------
def read_advert(m: Any, sender: str, n: int) -> sa.KeyAdvert:
    """At the server: a place's public keys."""
    r = _Reader(m, sender, KEYS_TAG, ("ids", "channel", "mask"))
    ids = r.ids("ids", n)
    return sa.KeyAdvert(
        ids, r.array("channel", _BYTE, ("m", 32)), r.array("mask", _BYTE, ("m", 32))
    )


def read_neighbour_keys(m: Any, sender: str, ids: np.ndarray, k: int) -> sa.NeighbourKeys:
    """At a place: its clients' neighbours' public keys (one row per client of `ids`)."""
    r = _Reader(m, sender, KEYS_TAG, ("ids", "present", "channel", "mask"))
    r.sizes["m"] = ids.size
    got = r.array("ids", _ID, ("m",))
    if not np.array_equal(got, ids):
        raise r.error("the key message does not cover this place's clients")
    return sa.NeighbourKeys(
        got, r.array("present", _BOOL, ("m", k)), r.array("channel", _BYTE, ("m", k, 32)),
        r.array("mask", _BYTE, ("m", k, 32)),
    )  # fmt: skip


# -- step 2: shares ----------------------------------------------------------------------
def read_sealed(m: Any, sender: str, ids: np.ndarray, k: int) -> sa.SealedShares:
    """At the server: the ciphertexts of the clients `ids` that the place advertised."""
    why = "the shares message is not from the clients that advertised keys"
    return sa.SealedShares(*_read_shares(m, sender, ids, k, why))


def read_inbox(m: Any, sender: str, ids: np.ndarray, k: int) -> sa.Inbox:
    """At a place: the ciphertexts its clients' neighbours sealed for them."""
    why = "the routed shares do not cover this place's clients"
    return sa.Inbox(*_read_shares(m, sender, ids, k, why))


def _read_shares(m: Any, sender: str, ids: np.ndarray, k: int, why: str) -> tuple:
    """(ids, sealed, present) of a shares message for the clients `ids`."""
    r = _Reader(m, sender, SHARES_TAG, ("ids", "sealed", "present"))
    r.sizes["m"] = ids.size
    got = r.array("ids", _ID, ("m",))
    if not np.array_equal(got, ids):
        raise r.error(why)
    sealed = r.array("sealed", _BYTE, ("m", k, sa.SEALED_BYTES))
    return got, sealed, r.array("present", _BOOL, ("m", k))


# -- step 3: masked inputs ---------------------------------------------------------------
def read_masked(m: Any, sender: str, n: int, cohort: np.ndarray, length: int, bits: int):
    """At the server: the masked vectors of some of the place's clients."""
    r = _Reader(m, sender, MASKED_TAG, ("ids", "masked"))
    ids = r.ids("ids", n, within=cohort)
    return sa.MaskedInputs(ids, r.array("masked", ring_dtype(bits), ("m", length)))


# -- step 4: unmasking -------------------------------------------------------------------
def read_request(m: Any, sender: str, n: int, cohort: np.ndarray, k: int) -> sa.UnmaskRequest:
    """At a place: which neighbours of its clients are in U3 and which dropped."""
    r = _Reader(m, sender, UNMASK_TAG, ("ids", "survivors", "dropped", "n_inputs"))
    ids = r.ids("ids", n, within=cohort)
    survivors = r.array("survivors", _BOOL, ("m", k))
    dropped = r.array("dropped", _BOOL, ("m", k))
    count = m["n_inputs"]
    if type(count) is not int or not 0 <= count <= n:
        raise r.error(f"n_inputs must be an int in 0..{n}")
    return sa.UnmaskRequest(ids, survivors, dropped, count)


def read_unmask_shares(m: Any, sender: str, n: int, cohort: np.ndarray, k: int):
    """At the server: a place's clients' shares for the unmask request."""
    r = _Reader(m, sender, UNMASK_TAG, ("ids", "self_mask", "self_ok", "mask_key", "key_ok"))
    ids = r.ids("ids", n, within=cohort)
    e = shamir.ELEMENTS_PER_SECRET
    return sa.UnmaskShares(
        ids, r.array("self_mask", _SHARE, ("m", k, e)), r.array("self_ok", _BOOL, ("m", k)),
        r.array("mask_key", _SHARE, ("m", k, e)), r.array("key_ok", _BOOL, ("m", k)),
    )  # fmt: skip
