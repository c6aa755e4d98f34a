"""SecAgg+ (Bell et al. 2020; Bonawitz et al. 2017 on the complete graph): a server
learns the sum of the clients' vectors in Z_2^32 (or Z_2^64) and nothing else.

Parties: n clients, each with a vector x_u of d ring elements (a quantised update, see
``quantize.py``), and one server that relays every message. The communication graph
and the threshold t are public (``graph.py``). Client sets: U1 advertised keys, U2 sent
shares, U3 sent a masked input, U4 answered at unmasking.

Steps (methods of ``Client`` and ``Server`` carry the step numbers):

1. Advertise keys. Each client u draws two X25519 key pairs, (c_u^PK, c_u^SK) for its
   channels and (s_u^PK, s_u^SK) for its masks, and sends both public keys to the
   server, which sends each client those of its neighbours N(u) (``keys.py``).
2. Share keys. u draws a self-mask seed b_u (32 bytes, os.urandom) and Shamir-shares
   b_u and s_u^SK t-of-k (``shamir.py``): the neighbour at graph point j gets the j-th
   shares, encrypted with AES-256-GCM under the key derived from X25519(c_u^SK,
   c_v^PK). u also derives the pair seeds s_uv from X25519(s_u^SK, s_v^PK). The server
   routes the ciphertexts.
3. Masked input. u decrypts the shares it received (senders: N(u) ∩ U2) and sends
   y_u = x_u + PRG(b_u) + sum_{v in N(u) ∩ U2} ±PRG(s_uv) mod 2^bits (plus when u < v).
4. Unmasking. The server announces U3 (and U2 \\ U3) to each surviving client; a client
   refuses if a neighbour is in both, or if |U3| < t, and otherwise sends its share of
   b_v for each neighbour v in U3 and of s_v^SK for each neighbour v in U2 \\ U3.
5. Aggregate. For every v in U3 the server needs t shares of b_v, and for every v in
   U2 \\ U3 t shares of s_v^SK; if any is missing it raises ``TooFewSurvivors`` and
   unmasks nothing. Otherwise it reconstructs the secrets, recomputes s_vw for each
   dropped v and each neighbour w in U3, and returns
   sum_{u in U3} y_u - sum_{u in U3} PRG(b_u) - (the dropped clients' pair masks)
   = sum_{u in U3} x_u.

What each party learns (semi-honest, fewer than t corrupt neighbours per client):
the server learns sum_{u in U3} x_u, the sets U1..U4 and the public keys; each y_u it
receives is uniformly distributed on its own (masked by PRG(b_u)). A client learns its
neighbours' public keys, fewer than t shares of any other client's secrets, and U3.
A dropped client's input is never revealed: before step 3 it sent none, after step 3
its b_u is reconstructed only because y_u is part of the sum.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field

import numpy as np

from cipherray.protocols import prg

from . import keys, masking, shamir
from .errors import ProtocolViolation, TooFewSurvivors
from .graph import CommunicationGraph
from .quantize import ring_dtype

ROUND_ID_BYTES = 16
SHARE_BYTES = 2 * shamir.ELEMENTS_PER_SECRET * shamir.SHARE_DTYPE.itemsize  # b_u and s_u^SK


@dataclass(frozen=True)
class RoundConfig:
    """Public parameters of one round."""

    graph: CommunicationGraph
    length: int
    bits: int = 32
    round_id: bytes = field(default_factory=lambda: os.urandom(ROUND_ID_BYTES))

    @property
    def threshold(self) -> int:
        return self.graph.threshold


@dataclass(frozen=True)
class PublicKeys:
    channel: bytes
    mask: bytes


@dataclass(frozen=True)
class UnmaskRequest:
    """Step 4's announcement to one client, restricted to its neighbours."""

    survivors: tuple[int, ...]  # neighbours in U3
    dropped: tuple[int, ...]  # neighbours in U2 \ U3
    n_inputs: int  # |U3|


@dataclass(frozen=True)
class UnmaskResponse:
    """Step 4's answer: shares (13 field elements each) keyed by the client they belong to."""

    self_mask_shares: dict[int, np.ndarray]
    mask_key_shares: dict[int, np.ndarray]


class Client:
    """One client's state through a round."""

    def __init__(self, cid: int, config: RoundConfig):
        self.cid, self.config = cid, config
        self.neighbours = config.graph.neighbours[cid]
        self._channel = keys.KeyPair.generate()
        self._mask = keys.KeyPair.generate()
        self._self_seed = prg.new_seed()
        self._channel_keys: dict[int, bytes] = {}
        self._pair_seeds: dict[int, bytes] = {}
        self._held: dict[int, np.ndarray] = {}  # owner -> (2, 13) shares

    # -- step 1 ------------------------------------------------------------------------
    def advertise_keys(self) -> PublicKeys:
        return PublicKeys(self._channel.public, self._mask.public)

    # -- step 2 ------------------------------------------------------------------------
    def share_keys(self, neighbour_keys: dict[int, PublicKeys]) -> dict[int, bytes]:
        """Ciphertexts of this client's shares, one per neighbour that advertised keys."""
        cfg, u = self.config, self.cid
        present = [int(v) for v in self.neighbours if int(v) in neighbour_keys]
        chan = keys.agreements(self._channel.private, [neighbour_keys[v].channel for v in present])
        pair = keys.agreements(self._mask.private, [neighbour_keys[v].mask for v in present])
        for v, c, s in zip(present, chan, pair):
            self._channel_keys[v] = keys.derive_key(c, cfg.round_id, keys.CHANNEL_PURPOSE, u, v)
            self._pair_seeds[v] = keys.derive_key(s, cfg.round_id, keys.MASK_PURPOSE, u, v)
        secrets = np.frombuffer(self._self_seed + self._mask.private, dtype=np.uint8)
        shares = shamir.share(secrets.reshape(2, 32), cfg.threshold, len(self.neighbours))
        column = {int(v): j for j, v in enumerate(self.neighbours)}
        return {
            v: keys.seal(self._channel_keys[v], cfg.round_id, u, v, shares[column[v]].tobytes())
            for v in present
        }

    # -- step 3 ------------------------------------------------------------------------
    def masked_input(self, x: np.ndarray, received: dict[int, bytes]) -> np.ndarray:
        """y_u from this client's ring vector and the shares its neighbours sent."""
        cfg, u = self.config, self.cid
        x = np.asarray(x)
        if x.dtype != ring_dtype(cfg.bits) or x.shape != (cfg.length,):
            raise ValueError(f"the input must be {cfg.length} elements of Z_2^{cfg.bits}")
        y = x + masking.expand(self._self_seed, cfg.length, cfg.bits)
        for v, sealed in received.items():
            if v not in self._channel_keys:
                raise ProtocolViolation(f"client {u} got shares from non-neighbour {v}")
            plain = keys.open_sealed(self._channel_keys[v], cfg.round_id, v, u, sealed)
            self._held[v] = np.frombuffer(plain, dtype=shamir.SHARE_DTYPE).reshape(2, -1)
            mask = masking.expand(self._pair_seeds[v], cfg.length, cfg.bits)
            (np.add if masking.pair_sign(u, v) > 0 else np.subtract)(y, mask, out=y)
        return y

    # -- step 4 ------------------------------------------------------------------------
    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Shares of b_v for surviving neighbours and of s_v^SK for dropped ones."""
        both = set(request.survivors) & set(request.dropped)
        if both:
            raise ProtocolViolation(f"server asked client {self.cid} for both secrets of {both}")
        if request.n_inputs < self.config.threshold:
            raise TooFewSurvivors("unmasking", request.n_inputs, self.config.threshold, self.cid)
        return UnmaskResponse(
            {v: self._held[v][0] for v in request.survivors if v in self._held},
            {v: self._held[v][1] for v in request.dropped if v in self._held},
        )


class Server:
    """The server's state through a round: it routes messages and unmasks the sum."""

    def __init__(self, config: RoundConfig):
        self.config = config
        self.public_keys: dict[int, PublicKeys] = {}
        self.senders: set[int] = set()  # U2
        self.masked: dict[int, np.ndarray] = {}  # U3 -> y_u

    # -- step 1 ------------------------------------------------------------------------
    def collect_keys(self, advertised: dict[int, PublicKeys]) -> dict[int, dict[int, PublicKeys]]:
        """Each advertising client's neighbours' public keys."""
        self.public_keys = dict(advertised)
        return {
            u: {
                int(v): advertised[int(v)]
                for v in self.config.graph.neighbours[u]
                if v in advertised
            }
            for u in advertised
        }

    # -- step 2 ------------------------------------------------------------------------
    def route_shares(self, sent: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Regroup ciphertexts by receiver: receiver -> {sender: ciphertext}."""
        self.senders = set(sent)
        inbox: dict[int, dict[int, bytes]] = {}
        for u, out in sent.items():
            for v, sealed in out.items():
                inbox.setdefault(v, {})[u] = sealed
        return inbox

    # -- step 3/4 ----------------------------------------------------------------------
    def collect_masked(self, masked: dict[int, np.ndarray]) -> dict[int, UnmaskRequest]:
        """Record the masked inputs (U3) and build each survivor's unmask request."""
        t = self.config.threshold
        if len(masked) < t:
            raise TooFewSurvivors("masked input", len(masked), t)
        self.masked = dict(masked)
        dropped = self.senders - set(masked)
        requests = {}
        for u in masked:
            nb = [int(v) for v in self.config.graph.neighbours[u]]
            requests[u] = UnmaskRequest(
                tuple(v for v in nb if v in self.masked),
                tuple(v for v in nb if v in dropped),
                len(masked),
            )
        return requests

    # -- step 5 ------------------------------------------------------------------------
    def aggregate(self, responses: dict[int, UnmaskResponse]) -> np.ndarray:
        """sum_{u in U3} x_u, or ``TooFewSurvivors`` (and nothing) if a secret is short."""
        cfg, graph = self.config, self.config.graph
        survivors = sorted(self.masked)
        dropped = sorted(self.senders - set(self.masked))
        self_seeds = self._reconstruct(survivors, responses, "self_mask_shares")
        mask_keys = self._reconstruct(dropped, responses, "mask_key_shares")
        dtype = ring_dtype(cfg.bits)
        total = np.zeros(cfg.length, dtype=dtype)
        for u in survivors:
            total += self.masked[u]
            total -= masking.expand(self_seeds[u], cfg.length, cfg.bits)
        for v, secret in mask_keys.items():
            if not hmac.compare_digest(keys.KeyPair.public_of(secret), self.public_keys[v].mask):
                raise ProtocolViolation(f"reconstructed mask key of client {v} is wrong")
            ws = [int(w) for w in graph.neighbours[v] if int(w) in self.masked]
            shared = keys.agreements(secret, [self.public_keys[w].mask for w in ws])
            for w, s in zip(ws, shared):
                seed = keys.derive_key(s, cfg.round_id, keys.MASK_PURPOSE, v, w)
                mask = masking.expand(seed, cfg.length, cfg.bits)
                # w added sign(w, v) * PRG(s_wv) to y_w: remove it
                (np.subtract if masking.pair_sign(w, v) > 0 else np.add)(total, mask, out=total)
        return total

    def _reconstruct(
        self, owners: list[int], responses: dict[int, UnmaskResponse], kind: str
    ) -> dict[int, bytes]:
        """Batched Shamir reconstruction of one secret per owner from the responders."""
        if not owners:
            return {}
        t, graph = self.config.threshold, self.config.graph
        points = np.zeros((len(owners), t), dtype=np.int64)
        shares = np.zeros((len(owners), t, 1, shamir.ELEMENTS_PER_SECRET), dtype=np.uint32)
        for i, v in enumerate(owners):
            got = 0
            for j, w in enumerate(graph.neighbours[v]):
                response = responses.get(int(w))
                held = getattr(response, kind) if response is not None else {}
                if v in held:
                    if got < t:
                        points[i, got], shares[i, got, 0] = j + 1, held[v]
                    got += 1
            if got < t:
                raise TooFewSurvivors("unmasking", got, t, client=v)
        secrets = shamir.reconstruct(points, shares, t)  # (B, 1, 32)
        return {v: secrets[i, 0].tobytes() for i, v in enumerate(owners)}
