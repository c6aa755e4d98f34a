"""Bad configuration and lifecycle errors (inline backend: no Ray needed)."""

from __future__ import annotations

import numpy as np
import pytest

import cipherray as cr


@pytest.mark.parametrize(
    "parties, match",
    [
        (["a", "a"], "used twice"),
        ({"a": {}, "b": {"workers": 0}}, "workers must be"),
        (["1bad"], "bad party name"),
        ([], "at least one party"),
        ({"a": {"cpus": 2}}, "unknown options"),
        ("a", "list of names"),
    ],
)
def test_bad_party_specs(parties, match):
    with pytest.raises(cr.ConfigError, match=match):
        cr.init(parties, backend="inline")


def test_bad_backend_network_and_timeout():
    with pytest.raises(cr.ConfigError, match="unknown backend"):
        cr.init(["a"], backend="spark")
    with pytest.raises(cr.ConfigError, match="unknown network"):
        cr.init(["a"], backend="inline", network="5g")
    with pytest.raises(cr.ConfigError, match="bandwidth"):
        cr.init(["a"], backend="inline", network={"latency_ms": 1})
    with pytest.raises(cr.ConfigError, match="timeout_s"):
        cr.init(["a"], backend="inline", timeout_s=0)


def test_mpc_needs_distinct_known_parties(inline_rt):
    rt = inline_rt
    with pytest.raises(cr.ConfigError, match="at least 2"):
        rt.mpc("a")
    with pytest.raises(cr.ConfigError, match="twice"):
        rt.mpc("a", "a")
    with pytest.raises(cr.ConfigError, match="unknown party"):
        rt.mpc("a", "nobody")


def test_calls_after_shutdown_raise():
    rt = cr.init(["a", "b"], backend="inline")
    a = rt.party("a")
    x = a(lambda: np.ones(2))()
    rt.shutdown()
    with pytest.raises(cr.ShutdownError):
        a(lambda: 1)()
    with pytest.raises(cr.ShutdownError):
        rt.get(x)
    with pytest.raises(cr.ShutdownError):
        rt.mpc("a", "b")
    rt.shutdown()  # idempotent


def test_context_manager_shuts_down():
    with cr.init(["a", "b"], backend="inline", driver_as="a") as rt:
        assert rt.get(rt.party("a")(lambda: 5)()) == 5
    with pytest.raises(cr.ShutdownError):
        rt.get(rt.party("a")(lambda: 5)())


def test_network_model_delays_and_is_reported():
    with cr.init(
        ["a", "b"], backend="inline", network={"latency_ms": 20, "bandwidth_mbps": 8}
    ) as rt:
        a, b = rt.parties
        mpc = rt.mpc(a, b)
        x = a(lambda: np.zeros(1000))().to(mpc)  # one seed message
        rt.get(x.reveal_to(a))  # one 8,000-byte message: 20 ms + 8 ms at 8 Mbit/s
        summary = rt.ledger.summary()
        net = summary.attrs["network_s"]
        assert net == pytest.approx(0.020 + (0.020 + 0.008), abs=0.004)
        assert "simulated network" in rt.ledger.report()
    lan = cr.init(["a"], backend="inline", network="lan")
    assert lan.network.latency_ms == 0.5 and lan.network.bandwidth_mbps == 1000
    lan.shutdown()


def test_public_scale_overflow_is_detected(inline_rt):
    rt = inline_rt
    a, b, _ = rt.parties
    mpc = rt.mpc(a, b)
    x = a(lambda: np.array([3.0e13]))().to(mpc)
    with pytest.raises(cr.RangeError, match="overflowed"):
        rt.get((x * 1000).reveal_to(a))
    with pytest.raises(OverflowError):
        x + 1e18
