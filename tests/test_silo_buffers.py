"""Receive buffers of large messages: reused only once nothing refers to them, never
while an array, a view or a message still does; bounded; small ones are plain arrays."""

from __future__ import annotations

import numpy as np

from cipherray.runtime.silo.buffers import MIN_POOLED, BufferPool

N = 3 * MIN_POOLED + 5


def test_a_buffer_is_handed_out_again_only_once_nothing_refers_to_it():
    pool = BufferPool(1 << 28)
    a = pool.take(N)
    assert a.flags.writeable and a.dtype == np.uint8 and a.shape == (N,)
    a[:] = 7
    b = pool.take(N)  # a still in use: another mapping
    assert pool.reused == 0 and not np.shares_memory(a, b)
    view = a[8:32].view(np.uint64)
    words = np.frombuffer(b, dtype=np.uint8)[:16]
    del a, b
    c = pool.take(N)  # a view of each is still alive
    assert pool.reused == 0 and not np.shares_memory(c, view) and not np.shares_memory(c, words)
    assert (view == 0x0707070707070707).all()
    del view
    d = pool.take(N)  # the first mapping is free again
    assert pool.reused == 1 and d[0] == 7 and not np.shares_memory(d, c)


def test_the_pool_keeps_at_most_its_bytes_and_small_buffers_are_plain_arrays():
    pool = BufferPool(2 * MIN_POOLED)
    held = [pool.take(MIN_POOLED) for _ in range(4)]  # only two are kept
    assert pool.pooled_bytes() <= 2 * MIN_POOLED
    del held
    pool.take(MIN_POOLED)
    assert pool.reused == 1
    small = pool.take(MIN_POOLED - 1)
    assert small.base is None and small.flags.writeable
    assert BufferPool(0).take(N).base is None


def test_a_buffer_of_another_size_is_reused_only_if_not_far_larger():
    pool = BufferPool(1 << 30)
    big = pool.take(8 * MIN_POOLED)
    del big
    pool.take(MIN_POOLED)  # would waste 7/8 of it: a new one
    assert pool.reused == 0
    again = pool.take(7 * MIN_POOLED)
    assert pool.reused == 1 and again.shape == (7 * MIN_POOLED,)


def test_a_cleared_pool_keeps_nothing_and_leaves_buffers_in_use_alone():
    pool = BufferPool(1 << 28)
    a = pool.take(N)
    a[:] = 3
    pool.clear()
    assert pool.pooled_bytes() == 0 and (a == 3).all()
    b = pool.take(N)
    assert not np.shares_memory(a, b)
