"""One SecAgg+ round with every party in this process, for tests and benchmarks.

``simulate_round`` runs the steps of ``protocol.py`` for n clients and the server,
drops the requested fractions of clients after step 2 (before their masked input) and
after step 3 (before unmasking), and reports the aggregate, the included clients, the
bytes each stage moves and the time each party spends. The runtime integration splits
the same ``Client`` / ``Server`` methods across parties.

What each party learns: as in ``protocol.py``. ``keep_server_view=True`` also returns
the masked inputs the server received (for the leak tests); the clients' inputs are
never part of the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from cipherray.protocols import prg

from . import shamir
from .graph import GraphParameters, build_graph, choose_parameters
from .protocol import Client, RoundConfig, Server
from .quantize import Quantizer, ring_dtype

KEY_BYTES = 32
ID_BYTES = 4
STAGES = ("advertise", "share_keys", "masked_input", "unmasking")


@dataclass
class RoundResult:
    """What the server obtains, and the round's costs."""

    ring_sum: np.ndarray  # sum of the included clients' vectors in Z_2^bits
    included: np.ndarray  # ids of the clients in U3, sorted
    params: GraphParameters
    value: np.ndarray | None = None  # dequantised sum when a quantizer was given
    bytes_up: dict[str, int] = field(default_factory=dict)  # clients -> server
    bytes_down: dict[str, int] = field(default_factory=dict)  # server -> clients
    client_seconds: dict[str, float] = field(default_factory=dict)  # all clients together
    client_max_seconds: float = 0.0  # the slowest client over the round
    client_median_seconds: float = 0.0
    server_seconds: dict[str, float] = field(default_factory=dict)
    server_view: dict[int, np.ndarray] | None = None  # y_u, only with keep_server_view


def drop_fraction(ids: list[int], fraction: float) -> tuple[list[int], list[int]]:
    """(kept, dropped): round(fraction * len(ids)) ids chosen by the CSPRNG drop out."""
    n_drop = round(fraction * len(ids))
    order = np.argsort(prg.fresh_ring(len(ids)), kind="stable")
    dropped = {ids[i] for i in order[:n_drop]}
    return [u for u in ids if u not in dropped], sorted(dropped)


class _Clock:
    def __init__(self, n: int):
        self.per_client = np.zeros(n)
        self.clients: dict[str, float] = {}
        self.server: dict[str, float] = {}

    def client(self, stage: str, u: int, start: float) -> None:
        spent = time.perf_counter() - start
        self.per_client[u] += spent
        self.clients[stage] = self.clients.get(stage, 0.0) + spent

    def server_done(self, stage: str, start: float) -> None:
        self.server[stage] = self.server.get(stage, 0.0) + time.perf_counter() - start


def simulate_round(
    updates: np.ndarray,
    params: GraphParameters | None = None,
    *,
    dropout_before_input: float = 0.0,
    dropout_before_unmask: float = 0.0,
    quantizer: Quantizer | None = None,
    bits: int = 32,
    keep_server_view: bool = False,
) -> RoundResult:
    """One round over ``updates`` (n, d): ring elements (uint32/uint64) when
    ``quantizer`` is None, real values to quantise otherwise. ``params`` defaults to
    ``choose_parameters(n, total dropout)``. Raises ``TooFewSurvivors`` (and returns no
    aggregate) when a stage is left below the threshold."""
    n, d = updates.shape
    bits = quantizer.bits if quantizer is not None else bits
    if quantizer is None and updates.dtype != ring_dtype(bits):
        raise TypeError(f"without a quantizer, updates must be {ring_dtype(bits)} ring elements")
    if quantizer is not None:
        quantizer.check(n)
    if params is None:
        total_dropout = 1 - (1 - dropout_before_input) * (1 - dropout_before_unmask)
        params = choose_parameters(n, total_dropout)
    config = RoundConfig(build_graph(params), d, bits)
    clock = _Clock(n)
    up = dict.fromkeys(STAGES, 0)
    down = dict.fromkeys(STAGES, 0)

    # step 1: advertise keys
    clients, advertised = {}, {}
    for u in range(n):
        start = time.perf_counter()
        clients[u] = Client(u, config)
        advertised[u] = clients[u].advertise_keys()
        clock.client("advertise", u, start)
    server = Server(config)
    start = time.perf_counter()
    keys_for = server.collect_keys(advertised)
    clock.server_done("advertise", start)
    up["advertise"] = n * 2 * KEY_BYTES
    down["advertise"] = sum(len(k) for k in keys_for.values()) * (2 * KEY_BYTES + ID_BYTES)

    # step 2: share keys
    sent = {}
    for u in range(n):
        start = time.perf_counter()
        sent[u] = clients[u].share_keys(keys_for[u])
        clock.client("share_keys", u, start)
    start = time.perf_counter()
    inbox = server.route_shares(sent)
    clock.server_done("share_keys", start)
    up["share_keys"] = sum(len(c) + ID_BYTES for out in sent.values() for c in out.values())
    down["share_keys"] = up["share_keys"]

    # step 3: masked input, after the first dropout
    kept, _ = drop_fraction(list(range(n)), dropout_before_input)
    masked = {}
    for u in kept:
        start = time.perf_counter()
        x = quantizer.quantize(updates[u]) if quantizer is not None else updates[u]
        masked[u] = clients[u].masked_input(x, inbox.get(u, {}))
        clock.client("masked_input", u, start)
    up["masked_input"] = len(masked) * d * ring_dtype(bits).itemsize
    start = time.perf_counter()
    requests = server.collect_masked(masked)
    clock.server_done("masked_input", start)

    # step 4: unmasking, after the second dropout
    responders, _ = drop_fraction(sorted(masked), dropout_before_unmask)
    responses = {}
    for u in responders:
        start = time.perf_counter()
        responses[u] = clients[u].unmask(requests[u])
        clock.client("unmasking", u, start)
        r = responses[u]
        up["unmasking"] += (len(r.self_mask_shares) + len(r.mask_key_shares)) * (
            shamir.ELEMENTS_PER_SECRET * shamir.SHARE_DTYPE.itemsize + ID_BYTES
        )
        down["unmasking"] += ID_BYTES * (len(requests[u].survivors) + len(requests[u].dropped))

    # step 5: aggregate
    start = time.perf_counter()
    total = server.aggregate(responses)
    clock.server_done("unmasking", start)

    included = np.array(sorted(masked), dtype=np.int64)
    value = quantizer.decode_sum(total, len(included)) if quantizer is not None else None
    return RoundResult(
        ring_sum=total,
        included=included,
        params=params,
        value=value,
        bytes_up=up,
        bytes_down=down,
        client_seconds=clock.clients,
        client_max_seconds=float(clock.per_client.max()),
        client_median_seconds=float(np.median(clock.per_client)),
        server_seconds=clock.server,
        server_view=dict(masked) if keep_server_view else None,
    )
