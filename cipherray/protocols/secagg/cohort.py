"""SecAgg+ with each step batched: a cohort of clients that run in one place (a chunk
of a population, or one silo) and a server that handles a whole round as arrays.

The protocol, its keys, channel and masks are those of ``protocol.py`` (read it for
the security argument); only the bookkeeping differs: a cohort keeps its clients'
secrets as arrays indexed (client, neighbour slot), and every message between a cohort
and the server is one object of arrays, so a round costs a handful of messages per
cohort however many clients it holds. Client ids are the round's indices 0..n-1 (the
graph's vertices); the caller maps them to its own client names.

Steps (``Cohort`` and ``CohortServer`` methods carry the numbers):

1. Advertise keys: each client draws two X25519 key pairs (channel c, mask s); the
   cohort sends the public keys (``KeyAdvert``). The server answers each cohort with
   its clients' neighbours' public keys (``NeighbourKeys``).
2. Share keys: each client agrees channel keys and pair seeds with its neighbours,
   Shamir-shares its self-mask seed b_u and s_u^SK t-of-k, and seals the j-th share
   for its j-th neighbour with AES-256-GCM (``SealedShares``). The server routes the
   ciphertexts to their receivers (``Inbox``).
3. Masked input: each client still present opens its ciphertexts and sends
   y_u = x_u + PRG(b_u) + sum_v sign(u, v) PRG(s_uv) over the neighbours whose shares
   it received (``MaskedInputs``).
4. Unmasking: the server tells each surviving client which neighbours are in U3 and
   which dropped after step 2 (``UnmaskRequest``); a client refuses a request that
   names a neighbour in both sets or has fewer than t inputs, and otherwise returns
   its shares of b_v (v in U3) and s_v^SK (v dropped) (``UnmaskShares``).
5. Aggregate: the server reconstructs every secret it needs from t shares (or raises
   ``TooFewSurvivors`` naming the first client short of shares, and unmasks nothing),
   removes the self masks and the dropped clients' pair masks, and returns
   sum_{u in U3} x_u.

What each party learns: as in ``protocol.py``. The server sees public keys,
ciphertexts it cannot open, masked inputs, and at step 4 shares of exactly one secret
per client; a cohort's clients see their neighbours' public keys and fewer than t
shares of any other client's secrets.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cipherray.cpu_kernels import x25519

from . import keys, masking, shamir
from .errors import ProtocolViolation, TooFewSurvivors
from .graph import CommunicationGraph
from .protocol import SHARE_BYTES, RoundConfig
from .quantize import ring_dtype

TAG_BYTES = 16
SEALED_BYTES = SHARE_BYTES + TAG_BYTES
ELEMENTS = shamir.ELEMENTS_PER_SECRET


def reverse_slots(graph: CommunicationGraph) -> np.ndarray:
    """(n, k): ``reverse[u, j]`` is the slot of u in the neighbour list of its j-th
    neighbour (the graph is symmetric)."""
    nb = graph.neighbours
    n, k = nb.shape
    owner = np.repeat(np.arange(n, dtype=np.int64), k)
    keys_sorted = owner * n + nb.reshape(-1)  # (v, w) pairs, row-major: already sorted by v
    order = np.argsort(keys_sorted, kind="stable")
    want = nb.reshape(-1) * n + owner  # (nb[u, j], u)
    pos = np.searchsorted(keys_sorted[order], want)
    if np.any(keys_sorted[order][np.minimum(pos, n * k - 1)] != want):
        raise ValueError("the communication graph is not symmetric")
    return (order[pos] % k).reshape(n, k)


@dataclass(frozen=True)
class KeyAdvert:
    ids: np.ndarray  # (m,)
    channel: np.ndarray  # (m, 32) uint8
    mask: np.ndarray  # (m, 32) uint8


@dataclass(frozen=True)
class NeighbourKeys:
    ids: np.ndarray  # (m,)
    present: np.ndarray  # (m, k) bool: the neighbour advertised keys
    channel: np.ndarray  # (m, k, 32) uint8
    mask: np.ndarray  # (m, k, 32) uint8


@dataclass(frozen=True)
class SealedShares:
    ids: np.ndarray  # (m,)
    sealed: np.ndarray  # (m, k, SEALED_BYTES) uint8: client i's share for its j-th neighbour
    present: np.ndarray  # (m, k) bool


@dataclass(frozen=True)
class Inbox:
    ids: np.ndarray  # (m,)
    sealed: np.ndarray  # (m, k, SEALED_BYTES): from client i's j-th neighbour
    present: np.ndarray  # (m, k) bool


@dataclass(frozen=True)
class MaskedInputs:
    ids: np.ndarray  # (m',) the clients that sent one
    masked: np.ndarray  # (m', d) ring elements


@dataclass(frozen=True)
class UnmaskRequest:
    ids: np.ndarray  # (m,)
    survivors: np.ndarray  # (m, k) bool: neighbour in U3
    dropped: np.ndarray  # (m, k) bool: neighbour in U2 \ U3
    n_inputs: int


@dataclass(frozen=True)
class UnmaskShares:
    ids: np.ndarray  # (m,) the responders
    self_mask: np.ndarray  # (m, k, 13): share of b_v for the j-th neighbour v
    self_ok: np.ndarray  # (m, k) bool
    mask_key: np.ndarray  # (m, k, 13): share of s_v^SK
    key_ok: np.ndarray  # (m, k) bool


BASE_POINT = np.zeros(32, dtype=np.uint8)
BASE_POINT[0] = 9  # RFC 7748's u = 9


def _generate(m: int) -> tuple[np.ndarray, np.ndarray]:
    """m fresh X25519 key pairs: (private (m, 32), public (m, 32)) as uint8; private keys
    are 32 bytes from os.urandom (clamped inside X25519, as RFC 7748 and cryptography do),
    public keys X25519(private, 9) in one batched call where the IFMA kernel runs."""
    sk = np.frombuffer(os.urandom(32 * m), np.uint8).reshape(m, 32).copy()
    if m and x25519.available():
        pk, _ = x25519.x25519_many(sk, np.broadcast_to(BASE_POINT, (m, 32)))
        return sk, pk
    pk = np.empty((m, 32), dtype=np.uint8)
    for i in range(m):
        key = X25519PrivateKey.from_private_bytes(sk[i].tobytes())
        pk[i] = np.frombuffer(key.public_key().public_bytes_raw(), dtype=np.uint8)
    return sk, pk


def _cores() -> int:
    """CPU cores this process may use (the server's unmasking runs on all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _rows(ids: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` within ``where`` (both 1-D; every id must be present)."""
    order = np.argsort(where, kind="stable")
    pos = np.searchsorted(where[order], ids)
    if np.any(pos >= where.size) or np.any(where[order][np.minimum(pos, where.size - 1)] != ids):
        raise ProtocolViolation("a message names clients that are not in this cohort")
    return order[pos]


class Cohort:
    """The clients ``ids`` of one round, run together in one place."""

    def __init__(self, ids: np.ndarray, config: RoundConfig):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.config = config
        self.neighbours = config.graph.neighbours[self.ids]  # (m, k)
        m, k = self.neighbours.shape
        self._channel_sk, self._channel_pk = _generate(m)
        self._mask_sk, self._mask_pk = _generate(m)
        self._self_seed = np.frombuffer(os.urandom(32 * m), np.uint8).reshape(m, 32).copy()
        self._channel_key = np.zeros((m, k, 32), dtype=np.uint8)
        self._pair_seed = np.zeros((m, k, 32), dtype=np.uint8)
        self._agreed = np.zeros((m, k), dtype=bool)
        self._held = np.zeros((m, k, 2, ELEMENTS), dtype=shamir.SHARE_DTYPE)
        self._have = np.zeros((m, k), dtype=bool)

    # -- step 1 ------------------------------------------------------------------------
    def advertise(self) -> KeyAdvert:
        return KeyAdvert(self.ids, self._channel_pk.copy(), self._mask_pk.copy())

    # -- step 2 ------------------------------------------------------------------------
    def share_keys(self, received: NeighbourKeys) -> SealedShares:
        cfg = self.config
        rows = _rows(received.ids, self.ids)
        if not np.array_equal(rows, np.arange(self.ids.size)):
            raise ProtocolViolation("the server's key message does not cover this cohort")
        m, k = self.neighbours.shape
        secrets = np.concatenate([self._self_seed, self._mask_sk], axis=1)  # (m, 64)
        shares = shamir.share(secrets.reshape(2 * m, 32), cfg.threshold, k)  # (k, 2m, 13)
        shares = shares.reshape(k, m, 2, ELEMENTS).transpose(1, 0, 2, 3)
        sealed = np.zeros((m, k, SEALED_BYTES), dtype=np.uint8)
        chan_kdf = keys.Deriver(cfg.round_id, keys.CHANNEL_PURPOSE)
        mask_kdf = keys.Deriver(cfg.round_id, keys.MASK_PURPOSE)
        channel = keys.Channel(cfg.round_id)
        rows, slots = np.nonzero(received.present)  # every (client, neighbour slot) pair
        us, vs = self.ids[rows], self.neighbours[rows, slots]
        chan = keys.agreements_many(self._channel_sk[rows], received.channel[rows, slots])
        pair = keys.agreements_many(self._mask_sk[rows], received.mask[rows, slots])
        ckeys = chan_kdf.keys(chan, us, vs)
        self._channel_key[rows, slots] = ckeys
        self._pair_seed[rows, slots] = mask_kdf.keys(pair, us, vs)
        flat_keys = ckeys.tobytes()
        plain = np.ascontiguousarray(shares[rows, slots]).tobytes()  # SHARE_BYTES per pair
        width = SHARE_BYTES
        blobs = [
            channel.seal(flat_keys[32 * n : 32 * n + 32], u, v, plain[width * n : width * (n + 1)])
            for n, (u, v) in enumerate(zip(us.tolist(), vs.tolist()))
        ]
        if blobs:
            sealed[rows, slots] = np.frombuffer(b"".join(blobs), np.uint8).reshape(-1, SEALED_BYTES)
        self._agreed[rows, slots] = True
        return SealedShares(self.ids, sealed, self._agreed.copy())

    # -- step 3 ------------------------------------------------------------------------
    def masked_input(
        self, inbox: Inbox, inputs: np.ndarray, sending: np.ndarray | None = None
    ) -> MaskedInputs:
        """y for the clients flagged in ``sending`` (default all): ``inputs`` is (m, d)
        ring elements in the cohort's id order."""
        cfg, dtype = self.config, ring_dtype(self.config.bits)
        m, k = self.neighbours.shape
        x = np.asarray(inputs)
        if x.dtype != dtype or x.shape != (m, cfg.length):
            raise ValueError(f"inputs must be ({m}, {cfg.length}) elements of Z_2^{cfg.bits}")
        sending = np.ones(m, dtype=bool) if sending is None else np.asarray(sending, bool)
        rows = _rows(inbox.ids, self.ids)
        if np.any(inbox.present & ~self._agreed[rows]):
            raise ProtocolViolation("shares arrived from a client that is not a neighbour")
        channel = keys.Channel(cfg.round_id)
        take = np.zeros(m, dtype=bool)
        take[rows[sending[rows]]] = True
        pos = np.full(m, -1, dtype=np.int64)
        pos[rows] = np.arange(rows.size)
        mine, slots = np.nonzero(inbox.present[pos[np.flatnonzero(take)]])
        clients = np.flatnonzero(take)[mine]  # cohort row of each received pair
        ckeys = self._channel_key[clients, slots].tobytes()
        blobs = inbox.sealed[pos[clients], slots].tobytes()
        us, vs = self.ids[clients].tolist(), self.neighbours[clients, slots].tolist()
        plains = []
        for n, (u, v) in enumerate(zip(us, vs)):
            try:
                plains.append(
                    channel.open(ckeys[32 * n : 32 * n + 32], v, u,
                                 blobs[SEALED_BYTES * n : SEALED_BYTES * (n + 1)])
                )  # fmt: skip
            except InvalidTag as e:
                raise ProtocolViolation(
                    f"client {u}: the shares from client {v} failed authentication"
                ) from e
        if plains:
            got = np.frombuffer(b"".join(plains), shamir.SHARE_DTYPE)
            self._held[clients, slots] = got.reshape(-1, 2, ELEMENTS)
            self._have[clients, slots] = True
        out = []
        for i in np.flatnonzero(take):
            u = int(self.ids[i])
            have = np.flatnonzero(self._have[i])
            seeds = np.concatenate([self._self_seed[i : i + 1], self._pair_seed[i, have]])
            signs = np.ones(1 + have.size, dtype=np.int8)
            signs[1:] = np.where(u < self.neighbours[i, have], 1, -1)
            y = x[i].copy()
            masking.add_masks(y, seeds, signs, cfg.bits)
            out.append((u, y))
        ids = np.array([u for u, _ in out], dtype=np.int64)
        ys = np.stack([y for _, y in out]) if out else np.zeros((0, cfg.length), dtype)
        return MaskedInputs(ids, ys)

    # -- step 4 ------------------------------------------------------------------------
    def unmask(self, request: UnmaskRequest, responding: np.ndarray | None = None) -> UnmaskShares:
        """Shares for the clients of ``request`` (those flagged in ``responding``)."""
        if request.n_inputs < self.config.threshold:
            raise TooFewSurvivors("unmasking", request.n_inputs, self.config.threshold)
        both = request.survivors & request.dropped
        if both.any():
            r, j = np.argwhere(both)[0]
            raise ProtocolViolation(
                f"the server asked client {int(request.ids[r])} for both secrets of client "
                f"{int(self.config.graph.neighbours[request.ids[r], j])}"
            )
        rows = _rows(request.ids, self.ids)
        if responding is not None:
            keep = np.asarray(responding, bool)[rows]
            rows = rows[keep]
            survivors, dropped = request.survivors[keep], request.dropped[keep]
        else:
            survivors, dropped = request.survivors, request.dropped
        have = self._have[rows]
        self_ok, key_ok = survivors & have, dropped & have
        held = self._held[rows]
        return UnmaskShares(
            self.ids[rows],
            np.where(self_ok[..., None], held[:, :, 0], 0).astype(shamir.SHARE_DTYPE),
            self_ok,
            np.where(key_ok[..., None], held[:, :, 1], 0).astype(shamir.SHARE_DTYPE),
            key_ok,
        )


class CohortServer:
    """The server of one round over cohorts (see the module docstring)."""

    def __init__(self, config: RoundConfig):
        self.config = config
        graph = config.graph
        self.n, self.k = graph.neighbours.shape
        self.reverse = reverse_slots(graph)
        self.channel_pk = np.zeros((self.n, 32), dtype=np.uint8)
        self.mask_pk = np.zeros((self.n, 32), dtype=np.uint8)
        self.advertised = np.zeros(self.n, dtype=bool)  # U1
        self.sent = np.zeros((self.n, self.k), dtype=bool)  # u sealed for its j-th neighbour
        self.senders = np.zeros(self.n, dtype=bool)  # U2
        self.inputs = np.zeros(self.n, dtype=bool)  # U3
        self.total = np.zeros(config.length, dtype=ring_dtype(config.bits))
        self._sealed = np.zeros((0,), dtype=np.uint8)

    # -- step 1 ------------------------------------------------------------------------
    def collect_keys(self, adverts: list[KeyAdvert]) -> list[NeighbourKeys]:
        for a in adverts:
            self.channel_pk[a.ids], self.mask_pk[a.ids] = a.channel, a.mask
            self.advertised[a.ids] = True
        out = []
        for a in adverts:
            nb = self.config.graph.neighbours[a.ids]
            out.append(
                NeighbourKeys(a.ids, self.advertised[nb], self.channel_pk[nb], self.mask_pk[nb])
            )
        return out

    # -- step 2 ------------------------------------------------------------------------
    def route_shares(self, sent: list[SealedShares], cohorts: list[np.ndarray]) -> list[Inbox]:
        """Ciphertexts regrouped by receiver, one ``Inbox`` per cohort of ``cohorts``."""
        sealed = np.zeros((self.n, self.k, SEALED_BYTES), dtype=np.uint8)
        for s in sent:
            if not self.advertised[s.ids].all():
                raise ProtocolViolation("shares from a client that advertised no keys")
            sealed[s.ids], self.sent[s.ids] = s.sealed, s.present
            self.senders[s.ids] = True
        nb = self.config.graph.neighbours
        out = []
        for ids in cohorts:
            src, slot = nb[ids], self.reverse[ids]
            out.append(Inbox(ids, sealed[src, slot], self.sent[src, slot]))
        return out

    # -- step 3/4 ----------------------------------------------------------------------
    def collect_masked(self, masked: list[MaskedInputs]) -> list[UnmaskRequest]:
        """Records U3 and sums the masked inputs; one request per cohort that sent."""
        t = self.config.threshold
        for mi in masked:
            if not self.senders[mi.ids].all():
                raise ProtocolViolation("a masked input from a client that shared no keys")
            self.inputs[mi.ids] = True
        count = int(self.inputs.sum())
        if count < t:
            raise TooFewSurvivors("masked input", count, t)
        for mi in masked:
            self.total += np.add.reduce(mi.masked, axis=0, dtype=self.total.dtype)
        nb = self.config.graph.neighbours
        dropped = self.senders & ~self.inputs
        return [
            UnmaskRequest(mi.ids, self.inputs[nb[mi.ids]], dropped[nb[mi.ids]], count)
            for mi in masked
        ]

    # -- step 5 ------------------------------------------------------------------------
    def aggregate(self, responses: list[UnmaskShares]) -> np.ndarray:
        """sum_{u in U3} x_u, or ``TooFewSurvivors`` (and nothing) if a secret is short."""
        cfg, n, k = self.config, self.n, self.k
        self_sh = np.zeros((n, k, ELEMENTS), dtype=shamir.SHARE_DTYPE)
        key_sh = np.zeros((n, k, ELEMENTS), dtype=shamir.SHARE_DTYPE)
        self_ok = np.zeros((n, k), dtype=bool)
        key_ok = np.zeros((n, k), dtype=bool)
        for r in responses:
            self_sh[r.ids], self_ok[r.ids] = r.self_mask, r.self_ok
            key_sh[r.ids], key_ok[r.ids] = r.mask_key, r.key_ok
        survivors = np.flatnonzero(self.inputs)
        dropped = np.flatnonzero(self.senders & ~self.inputs)
        seeds = self._reconstruct(survivors, self_sh, self_ok)  # every check before unmasking
        secrets = self._reconstruct(dropped, key_sh, key_ok)
        total = self.total.copy()
        masking.add_masks(total, seeds, -np.ones(len(survivors), np.int8), cfg.bits)
        nb = cfg.graph.neighbours
        mask_kdf = keys.Deriver(cfg.round_id, keys.MASK_PURPOSE)
        for v, secret in zip(dropped, secrets):
            if not hmac.compare_digest(
                keys.KeyPair.public_of(secret.tobytes()), self.mask_pk[v].tobytes()
            ):
                raise ProtocolViolation(f"the reconstructed mask key of client {v} is wrong")
        # w added sign(w, v) PRG(s_wv) iff it received v's shares: remove those masks
        routed = self.sent[dropped] & self.inputs[nb[dropped]]  # (D, k)
        owner, slot = np.nonzero(routed)
        vs, ws = dropped[owner], nb[dropped[owner], slot]
        shared = keys.agreements_many(secrets[owner], self.mask_pk[ws], threads=_cores())
        pair = mask_kdf.keys(shared, vs, ws)
        signs = np.where(ws < vs, -1, 1).astype(np.int8)  # undo w's sign(w, v)
        masking.add_masks(total, pair, signs, cfg.bits)
        return total

    def _reconstruct(self, owners: np.ndarray, shares: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """(len(owners), 32) uint8 secrets from the first t available shares of each."""
        t, nb = self.config.threshold, self.config.graph.neighbours
        if owners.size == 0:
            return np.zeros((0, 32), dtype=np.uint8)
        holders, slots = nb[owners], self.reverse[owners]  # (B, k)
        avail = ok[holders, slots]
        counts = avail.sum(axis=1)
        short = np.flatnonzero(counts < t)
        if short.size:
            v = int(owners[short[0]])
            raise TooFewSurvivors("unmasking", int(counts[short[0]]), t, client=v)
        pick = np.argsort(~avail, axis=1, kind="stable")[:, :t]  # (B, t) neighbour slots
        rows = np.arange(owners.size)[:, None]
        got = shares[holders[rows, pick], slots[rows, pick]]  # (B, t, 13)
        secrets = shamir.reconstruct(pick + 1, got[:, :, None, :], t)  # (B, 1, 32)
        return secrets[:, 0]
