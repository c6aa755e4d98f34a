"""Secure aggregation (cipherray.protocols.secagg): exact sums under dropout, named
errors below the threshold, Shamir, uniformity of what the server receives,
quantisation error, and the graph's degree / threshold rule."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cipherray.protocols.secagg import (
    InsufficientShares,
    ProtocolViolation,
    QuantizationOverflow,
    Quantizer,
    TooFewSurvivors,
    choose_parameters,
    complete_parameters,
    shamir,
    simulate_round,
)
from cipherray.protocols.secagg import graph as graph_mod
from cipherray.protocols.secagg.protocol import Client, RoundConfig, UnmaskRequest
from cipherray.protocols.secagg.quantize import clip

D = 650  # softmax regression on digits: 64 * 10 + 10


def ring_inputs(n: int, d: int = D, bits: int = 32) -> np.ndarray:
    dtype = np.uint32 if bits == 32 else np.uint64
    return np.frombuffer(os.urandom(n * d * (bits // 8)), dtype=dtype).reshape(n, d).copy()


@pytest.mark.parametrize(
    "n, before_input, before_unmask",
    [
        (50, 0.1, 0.0),
        (50, 0.0, 0.1),
        (50, 0.3, 0.0),
        (50, 0.0, 0.3),
        (50, 0.3, 0.3),
        (120, 0.1, 0.1),
        (200, 0.1, 0.1),
        (200, 0.3, 0.3),
    ],
)
def test_sum_is_exact_over_included_clients(n, before_input, before_unmask):
    x = ring_inputs(n)
    r = simulate_round(x, dropout_before_input=before_input, dropout_before_unmask=before_unmask)
    assert len(r.included) == n - round(before_input * n)
    np.testing.assert_array_equal(r.ring_sum, x[r.included].sum(axis=0, dtype=np.uint32))
    assert r.bytes_up["masked_input"] == len(r.included) * D * 4


def test_z_2_64_ring():
    x = ring_inputs(40, d=33, bits=64)
    r = simulate_round(x, bits=64, dropout_before_input=0.1, dropout_before_unmask=0.1)
    np.testing.assert_array_equal(r.ring_sum, x[r.included].sum(axis=0, dtype=np.uint64))


def test_too_few_masked_inputs_is_a_named_error():
    params = choose_parameters(50, 0.51)
    with pytest.raises(TooFewSurvivors) as err:
        simulate_round(ring_inputs(50), params, dropout_before_input=0.7)
    assert err.value.stage == "masked input"
    assert (err.value.have, err.value.need) == (15, params.threshold)


def test_too_few_unmasking_shares_is_a_named_error():
    params = choose_parameters(50, 0.51)  # complete graph, t = 21 of 49
    assert params.complete and params.max_dropouts < 30
    with pytest.raises(TooFewSurvivors) as err:
        simulate_round(ring_inputs(50), params, dropout_before_unmask=0.6)
    assert err.value.stage == "unmasking" and err.value.have < err.value.need


def test_sparse_graph_below_threshold_is_a_named_error():
    params = choose_parameters(200, 0.19)  # sparse: k = 58
    assert not params.complete
    with pytest.raises(TooFewSurvivors, match="unmasking"):
        simulate_round(ring_inputs(200, d=8), params, dropout_before_unmask=0.8)


def test_client_refuses_to_reveal_both_secrets_of_a_neighbour():
    params = complete_parameters(5)
    config = RoundConfig(graph_mod.build_graph(params), 4)
    client = Client(0, config)
    with pytest.raises(ProtocolViolation):
        client.unmask(UnmaskRequest(survivors=(1, 2), dropped=(2,), n_inputs=4))


def test_shamir_round_trip_and_too_few_shares():
    secrets = np.frombuffer(os.urandom(3 * 32), dtype=np.uint8).reshape(3, 32)
    shares = shamir.share(secrets, 5, 9)
    assert shares.shape == (9, 3, shamir.ELEMENTS_PER_SECRET)
    assert shares.max() < shamir.PRIME
    pick = np.array([9, 2, 4, 7, 5])
    np.testing.assert_array_equal(shamir.reconstruct(pick, shares[pick - 1], 5), secrets)
    with pytest.raises(InsufficientShares):
        shamir.reconstruct(pick[:4], shares[pick[:4] - 1], 5)
    # t - 1 shares interpolate to something else
    wrong = shamir.reconstruct(pick[:4], shares[pick[:4] - 1], 4)
    assert not np.array_equal(wrong, secrets)


def test_shamir_batched_reconstruction_and_encoding():
    secrets = np.frombuffer(os.urandom(32 * 20), dtype=np.uint8).reshape(20, 1, 32)
    assert np.array_equal(
        shamir.elements_to_secrets(shamir.secrets_to_elements(secrets[:, 0])), secrets[:, 0]
    )
    shares = np.stack([shamir.share(s, 7, 30) for s in secrets])  # (20, 30, 1, 13)
    points = np.stack([np.arange(30)[i : i + 7] + 1 for i in range(20)])
    picked = np.stack([shares[i, points[i] - 1] for i in range(20)])
    np.testing.assert_array_equal(shamir.reconstruct(points, picked, 7), secrets)


def _chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def test_server_view_is_uniform_and_never_the_update():
    n = 50
    x = np.zeros((n, D), dtype=np.uint32)  # maximally non-uniform inputs
    x[::2] = 7
    r = simulate_round(x, dropout_before_input=0.1, keep_server_view=True)
    view = np.stack([r.server_view[u] for u in r.included])
    # 256 byte buckets, 255 degrees of freedom: mean 255, sd 22.6; 450 is 8.6 sd out
    byte_counts = np.bincount(view.view(np.uint8).ravel(), minlength=256)
    assert _chi_square(byte_counts) < 450
    # the top 6 bits of each word, 63 degrees of freedom: mean 63, sd 11.2; 160 is 8.6 sd
    top = np.bincount((view >> 26).ravel(), minlength=64)
    assert _chi_square(top) < 160
    for u in r.included:
        assert np.count_nonzero(r.server_view[u] == x[u]) <= 3  # expected 650 / 2^32
        assert not np.array_equal(r.server_view[u], x[u])
    np.testing.assert_array_equal(r.ring_sum, x[r.included].sum(axis=0, dtype=np.uint32))


@pytest.mark.parametrize("bits", [32, 64])
def test_quantised_round_recovers_the_sum_within_the_stated_error(bits):
    n = 60
    updates = np.frombuffer(os.urandom(8 * n * D), dtype=np.uint64).reshape(n, D)
    updates = (updates >> np.uint64(11)) * 2.0**-53 * 4 - 2  # in [-2, 2)
    q = Quantizer.for_clients(n, clip_range=1.0, bits=bits, clip_norm=20.0)
    r = simulate_round(updates, quantizer=q, dropout_before_input=0.1, dropout_before_unmask=0.1)
    exact = clip(updates[r.included], 1.0, 20.0).sum(axis=0)
    max_error, _ = q.error_bound(len(r.included))
    assert np.all(np.abs(r.value - exact) <= max_error)


def test_stochastic_rounding_is_unbiased_with_the_stated_variance():
    q = Quantizer(clip_range=1.0, scale=4.0)
    x = np.full(200_000, 0.3)  # 1.2 units: frac 0.2, variance 0.16 / 16 per coordinate
    z = q.quantize(x).view(np.int32) / q.scale
    assert set(np.unique(z)) <= {0.25, 0.5}
    _, variance_bound = q.error_bound(1)
    assert z.var() <= variance_bound
    # mean error 0, standard error sqrt(0.01 / 200000) = 2.2e-4; 2e-3 is 9 se
    assert abs(z.mean() - 0.3) < 2e-3


def test_quantisation_overflow_is_a_named_error():
    q = Quantizer.for_clients(100, clip_range=1.0)
    q.check(100)
    with pytest.raises(QuantizationOverflow):
        q.check(101)
    assert q.level * 100 <= 2**31 - 1
    with pytest.raises(QuantizationOverflow):
        simulate_round(np.zeros((101, 4)), quantizer=q)


@pytest.mark.parametrize("n, dropout", [(1000, 0.19), (10_000, 0.19), (10_000, 0.51)])
def test_degree_and_threshold_meet_the_bounds_and_are_minimal(n, dropout):
    p = choose_parameters(n, dropout)
    assert not p.complete and p.degree % 2 == 0
    assert p.security_failure <= 2.0**-40 and p.correctness_failure <= 2.0**-30
    assert p.threshold == graph_mod.security_threshold(n, p.degree, 0.05, 40)
    k = p.degree - 2  # the next smaller degree misses one of the bounds
    t = graph_mod.security_threshold(n, k, 0.05, 40)
    assert t > k or n * graph_mod.binomial_lower_tail(k, 1 - dropout, t) > 2.0**-30
    assert p.degree < 4 * np.log2(n) ** 2  # O(log n): far below n


def test_binomial_tails():
    assert graph_mod.binomial_upper_tail(10, 0.5, 10) == pytest.approx(2.0**-10)
    assert graph_mod.binomial_lower_tail(10, 0.5, 1) == pytest.approx(2.0**-10)
    assert graph_mod.binomial_upper_tail(4, 0.3, 0) == 1.0


def test_harary_graph_is_regular_symmetric_and_relabelled():
    g = graph_mod.harary_graph(101, 10, 5)
    nb = g.neighbours
    assert nb.shape == (101, 10)
    for u in range(101):
        assert u not in nb[u] and len(set(nb[u])) == 10
        for v in nb[u]:
            assert u in nb[v]
    # positions are relabelled: client 0's neighbours are not 1..5 and 96..100 every time
    assert any(
        set(graph_mod.harary_graph(101, 10, 5).neighbours[0])
        != {1, 2, 3, 4, 5, 96, 97, 98, 99, 100}
        for _ in range(3)
    )


def test_few_silos_use_the_complete_graph():
    p = complete_parameters(4)
    assert (p.degree, p.threshold, p.max_dropouts) == (3, 2, 1)
    x = ring_inputs(4, d=10)
    r = simulate_round(x, p, dropout_before_unmask=0.25)
    np.testing.assert_array_equal(r.ring_sum, x.sum(axis=0, dtype=np.uint32))
    with pytest.raises(TooFewSurvivors):
        simulate_round(x, p, dropout_before_input=0.25, dropout_before_unmask=0.34)


def test_key_agreement_without_the_ifma_kernel(monkeypatch):
    from cipherray.protocols.secagg import keys

    a, others = keys.KeyPair.generate(), [keys.KeyPair.generate() for _ in range(9)]
    publics = [o.public for o in others]
    fast = keys.agreements(a.private, publics)
    monkeypatch.setattr(keys._x25519, "available", lambda: False)
    assert keys.agreements(a.private, publics) == fast
    assert keys.agreements(others[0].private, [a.public]) == [fast[0]]
    x = ring_inputs(30, d=16)
    r = simulate_round(x, dropout_before_input=0.1, dropout_before_unmask=0.1)
    np.testing.assert_array_equal(r.ring_sum, x[r.included].sum(axis=0, dtype=np.uint32))
