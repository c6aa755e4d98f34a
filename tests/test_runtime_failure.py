"""A dead party or a slow one gives an error naming the party and the step, never a hang."""

from __future__ import annotations

import time

import numpy as np
import pytest

import cipherray as cr


def sleepy(x, seconds):
    time.sleep(seconds)
    return x


@pytest.fixture(scope="module")
def ray_rt():
    rt = cr.init(["a", "b", "c"], backend="ray", timeout_s=20, driver_as=["a", "b", "c"])
    yield rt
    rt.shutdown()


def test_killed_party_raises_party_error_within_timeout(ray_rt):
    rt = ray_rt
    a, b, c = rt.parties
    mpc = rt.mpc(a, b, c)
    x = a(lambda: np.arange(4.0))().to(mpc)
    rt.get(x.reveal_to(a))
    # b dies mid-job: its long step is running when the actor is killed
    slow = b(sleepy)(1, 30)
    time.sleep(0.5)
    rt.kill_worker("b")
    t0 = time.monotonic()
    with pytest.raises(cr.PartyError) as info:
        rt.get(slow)
    assert info.value.party == "b" and info.value.step == "sleepy"
    assert "died" in str(info.value)
    # a later joint step that needs b names b too
    with pytest.raises(cr.PartyError) as info2:
        rt.get((x + 1).reveal_to(a))
    assert info2.value.party == "b"
    assert time.monotonic() - t0 < rt.timeout_s


def test_slow_party_times_out_with_named_step():
    for backend in ("ray",):
        with cr.init(["a", "b"], backend=backend, timeout_s=2, driver_as=["a", "b"]) as rt:
            a = rt.party("a")
            t0 = time.monotonic()
            with pytest.raises(cr.PartyTimeoutError) as info:
                rt.get(a(sleepy)(1, 10))
            assert time.monotonic() - t0 < 5
            assert info.value.party == "a" and info.value.step == "sleepy"
            assert isinstance(info.value, TimeoutError)
            # a step waiting for that party's message is cancelled, not left queued:
            # the receiving party answers at once afterwards
            b = rt.party("b")
            waiting = rt.mpc(a, b)
            shared = a(sleepy)(1, 10).to(waiting)
            with pytest.raises(cr.PartyTimeoutError):
                rt.wait(shared)
            t1 = time.monotonic()
            assert rt.get(b(lambda: 2)()) == 2  # b's step that waited for a was cancelled
            assert time.monotonic() - t1 < 1.5


def test_inline_dead_worker_is_a_party_error():
    with cr.init(["a", "b"], backend="inline", driver_as="b") as rt:
        rt.kill_worker("b")
        with pytest.raises(cr.PartyError, match="party 'b'"):
            rt.get(rt.party("b")(lambda: 1)())
