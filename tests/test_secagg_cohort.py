"""SecAgg+ batched over cohorts (cipherray.protocols.secagg.cohort): exact sums with
10% and 30% dropout at both stages, named errors below the threshold with nothing
unmasked, tampering and malformed requests refused, and what the server receives is
uniform and never a client's input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cipherray.protocols.secagg import ProtocolViolation, TooFewSurvivors, choose_parameters
from cipherray.protocols.secagg import cohort as sa
from cipherray.protocols.secagg.graph import build_graph, complete_parameters
from cipherray.protocols.secagg.protocol import RoundConfig
from cipherray.protocols.secagg.simulation import drop_fraction


def ring(n: int, d: int, bits: int = 32) -> np.ndarray:
    dtype = np.uint32 if bits == 32 else np.uint64
    return np.frombuffer(os.urandom(n * d * (bits // 8)), dtype=dtype).reshape(n, d).copy()


class Round:
    """One round over `n_cohorts` cohorts, stage by stage."""

    def __init__(self, n: int, d: int, dropout: float, n_cohorts: int = 3, bits: int = 32,
                 complete: bool = False):  # fmt: skip
        total = 1 - (1 - dropout) ** 2
        params = complete_parameters(n) if complete else choose_parameters(n, total)
        self.config = RoundConfig(build_graph(params), d, bits)
        self.x = ring(n, d, bits)
        self.groups = np.array_split(np.arange(n), n_cohorts)
        self.cohorts = [sa.Cohort(ids, self.config) for ids in self.groups]
        self.server = sa.CohortServer(self.config)

    def keys_and_shares(self) -> list[sa.Inbox]:
        nks = self.server.collect_keys([c.advertise() for c in self.cohorts])
        sealed = [c.share_keys(k) for c, k in zip(self.cohorts, nks)]
        return self.server.route_shares(sealed, self.groups)

    def inputs(self, inboxes, sending: np.ndarray) -> list[sa.MaskedInputs]:
        return [
            c.masked_input(ib, self.x[g], sending[g])
            for c, ib, g in zip(self.cohorts, inboxes, self.groups)
        ]

    def unmask(self, masked, responding: np.ndarray) -> list[sa.UnmaskShares]:
        reqs = self.server.collect_masked(masked)
        out = []
        for r in reqs:
            if not r.ids.size:
                continue
            c = next(c for g, c in zip(self.groups, self.cohorts) if r.ids[0] in g)
            out.append(c.unmask(r, responding[c.ids]))
        return out


def alive_mask(n: int, ids: list[int]) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[ids] = True
    return m


@pytest.mark.parametrize("dropout", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("bits", [32, 64])
def test_sum_is_exact_over_the_included_clients(dropout, bits):
    n, d = 120, 37
    r = Round(n, d, dropout, bits=bits)
    inboxes = r.keys_and_shares()
    kept, dropped = drop_fraction(list(range(n)), dropout)  # vanish before masked input
    masked = r.inputs(inboxes, alive_mask(n, kept))
    responders, _ = drop_fraction(kept, dropout)  # vanish before unmasking
    total = r.server.aggregate(r.unmask(masked, alive_mask(n, responders)))
    assert len(dropped) == round(dropout * n)
    np.testing.assert_array_equal(np.flatnonzero(r.server.inputs), kept)
    np.testing.assert_array_equal(total, np.add.reduce(r.x[kept], axis=0, dtype=r.x.dtype))


def test_complete_graph_for_silos():
    r = Round(3, 11, 0.0, n_cohorts=3, complete=True)
    inboxes = r.keys_and_shares()
    masked = r.inputs(inboxes, np.ones(3, bool))
    total = r.server.aggregate(r.unmask(masked, np.ones(3, bool)))
    np.testing.assert_array_equal(total, r.x.sum(axis=0, dtype=np.uint32))


def test_too_few_masked_inputs_is_named_and_nothing_is_unmasked():
    n = 40
    r = Round(n, 9, 0.1)
    inboxes = r.keys_and_shares()
    t = r.config.threshold
    masked = r.inputs(inboxes, alive_mask(n, list(range(t - 1))))
    with pytest.raises(TooFewSurvivors, match="masked input"):
        r.server.collect_masked(masked)


def test_too_few_unmask_responses_is_named_and_returns_no_aggregate():
    n = 40
    r = Round(n, 9, 0.1)
    inboxes = r.keys_and_shares()
    masked = r.inputs(inboxes, np.ones(n, bool))
    t = r.config.threshold
    shares = r.unmask(masked, alive_mask(n, list(range(t - 1))))
    with pytest.raises(TooFewSurvivors, match="unmasking.*for client"):
        r.server.aggregate(shares)


def test_tampered_share_ciphertext_names_sender_and_receiver():
    n = 30
    r = Round(n, 5, 0.0, n_cohorts=1)
    (inbox,) = r.keys_and_shares()
    i, j = 0, int(np.flatnonzero(inbox.present[0])[0])
    sealed = inbox.sealed.copy()
    sealed[i, j, 5] ^= 1
    bad = sa.Inbox(inbox.ids, sealed, inbox.present)
    sender = int(r.config.graph.neighbours[inbox.ids[i], j])
    with pytest.raises(ProtocolViolation, match=f"client {inbox.ids[i]}: .* client {sender}"):
        r.cohorts[0].masked_input(bad, r.x, np.ones(n, bool))


def test_a_request_for_both_secrets_of_a_neighbour_is_refused():
    n = 30
    r = Round(n, 5, 0.0, n_cohorts=1)
    inboxes = r.keys_and_shares()
    masked = r.inputs(inboxes, np.ones(n, bool))
    (req,) = r.server.collect_masked(masked)
    evil = sa.UnmaskRequest(req.ids, req.survivors, req.survivors.copy(), req.n_inputs)
    with pytest.raises(ProtocolViolation, match="both secrets"):
        r.cohorts[0].unmask(evil)


def test_server_view_is_uniform_and_never_the_input():
    """Each masked vector the server gets is uniform on Z_2^32 (chi-square on the top
    byte and on the low byte over many coordinates) and equals no client's input,
    even where the inputs are all zero."""
    n, d = 60, 2000
    r = Round(n, d, 0.0)
    r.x[:] = 0  # the most structured input there is
    inboxes = r.keys_and_shares()
    masked = r.inputs(inboxes, np.ones(n, bool))
    ys = np.concatenate([m.masked for m in masked])
    sent = r.x[np.concatenate([m.ids for m in masked])]
    assert not (ys == sent).all(axis=1).any()
    assert (ys == sent).mean() < 0.01  # agreement no better than chance (2^-32 per entry)
    from scipy.stats import chisquare

    for byte in (ys & 0xFF, ys >> 24):
        counts = np.bincount(byte.reshape(-1).astype(np.int64), minlength=256)
        assert chisquare(counts).pvalue > 1e-4
    # and each client's masked vector alone is uniform too
    counts = np.bincount((ys[0] >> 24).astype(np.int64), minlength=256)
    assert chisquare(counts).pvalue > 1e-4


def test_reverse_slots_of_the_sparse_graph():
    params = choose_parameters(500, 0.19)
    graph = build_graph(params)
    rev = sa.reverse_slots(graph)
    nb = graph.neighbours
    u = np.arange(500)[:, None]
    assert np.array_equal(nb[nb, rev], np.broadcast_to(u, nb.shape))


@pytest.mark.parametrize("native", [True, False])
def test_batched_key_derivation_equals_derive_key(native, monkeypatch):
    from cipherray.protocols.secagg import keys

    round_id = os.urandom(16)
    d = keys.Deriver(round_id, keys.CHANNEL_PURPOSE)
    if not native:
        monkeypatch.setattr(d, "_native", None)
    shared = np.frombuffer(os.urandom(32 * 40), np.uint8).reshape(40, 32)
    vs = np.array([3, 999, 2**40 + 7, *range(10, 47)])[:40]
    got = d.keys(shared, 500, vs)
    for i, v in enumerate(vs.tolist()):
        want = keys.derive_key(shared[i].tobytes(), round_id, keys.CHANNEL_PURPOSE, 500, v)
        assert got[i].tobytes() == want
    assert d.keys(shared[:0], 1, vs[:0]).shape == (0, 32)


def test_batched_key_generation_matches_cryptography():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk, pk = sa._generate(37)
    assert len({bytes(r) for r in sk}) == 37
    for s, p in zip(sk, pk):
        want = X25519PrivateKey.from_private_bytes(s.tobytes()).public_key().public_bytes_raw()
        assert p.tobytes() == want
