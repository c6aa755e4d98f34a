"""The receiver's copy thread: chunks land in their message's buffer exactly as sent,
every wire check still holds with it, its queue is bounded (backpressure), and it copies
what it has before it ends."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cipherray.runtime.errors import WireError
from cipherray.runtime.silo import copier, wire
from cipherray.runtime.silo.copier import CopyJob, CopyThread

HDR = dict(job="j", src="bank", dst="insurer", tag="t/1", sess=7, seq=3)


@pytest.fixture
def thread():
    t = CopyThread(max_pending=4, name="test-copy")
    yield t
    t.close()


def assemble(value, chunk_bytes, copy_thread):
    asm, msg = None, None
    for f in wire.frames(value, chunk_bytes=chunk_bytes, **HDR):
        h, chunk = wire.parse_frame(f, "bank")
        asm = asm or wire.Assembler(h, "bank", copy_thread)
        msg = asm.add(h, chunk)
    return msg


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096, 1 << 16, 1 << 20])
def test_chunks_copied_on_the_thread_make_the_message_as_sent(thread, chunk_bytes):
    a = np.random.default_rng(chunk_bytes).integers(0, 2**63, size=20_000, dtype=np.uint64)
    if chunk_bytes == 1:
        a = a[:300]  # 2400 frames of one byte
    msg = assemble(a, chunk_bytes, thread)
    got = wire.decode(msg, wire.Expect.array(np.uint64, (len(a),)))
    assert np.array_equal(got, a) and got.flags.writeable


def test_the_copies_run_on_the_thread_and_a_message_of_one_frame_in_the_caller(thread, monkeypatch):
    where = []
    real = copier.copy_chunk

    def recording(dst, chunk):
        where.append(threading.current_thread().name)
        real(dst, chunk)

    monkeypatch.setattr(copier, "copy_chunk", recording)
    monkeypatch.setattr(wire, "copy_chunk", recording)
    assemble(np.arange(1000, dtype=np.int64), 1000, thread)  # 8 frames
    me = threading.current_thread().name  # (the last chunk: while the thread ends its own)
    assert sorted(where) == sorted(["test-copy"] * 7 + [me])
    where.clear()
    assemble(np.arange(10, dtype=np.int64), 1000, thread)  # 1 frame
    assert where == [me]


def test_every_wire_check_holds_with_a_copy_thread(thread):
    frames = list(wire.frames(np.arange(100), chunk_bytes=200, **HDR))
    h0, c0 = wire.parse_frame(frames[0], "bank")
    asm = wire.Assembler(h0, "bank", thread)
    assert asm.add(h0, c0) is None
    h2, c2 = wire.parse_frame(frames[2], "bank")
    with pytest.raises(WireError, match="does not continue") as e:
        asm.add(h2, c2)  # frame 1 skipped
    assert (e.value.party, e.value.step) == ("bank", "t/1")
    # a last frame longer or shorter than declared
    h1, c1 = wire.parse_frame(frames[1], "bank")
    asm = wire.Assembler(h0, "bank", thread)
    asm.add(h0, c0)
    last = wire.Header(**{**h1.__dict__, "chunk": 1, "chunks": 2})
    with pytest.raises(WireError, match="does not continue"):
        asm.add(last, c1)  # same message? no: chunks differ
    two = list(wire.frames(np.arange(50), chunk_bytes=200, **HDR))  # 2 frames: 200 + 200
    ha, ca = wire.parse_frame(two[0], "bank")
    hb, cb = wire.parse_frame(two[1], "bank")
    with pytest.raises(WireError, match="truncated: 399 of 400"):
        a = wire.Assembler(ha, "bank", thread)
        a.add(ha, ca)
        a.add(hb, cb[:-1])
    with pytest.raises(WireError, match="exceed"):
        a = wire.Assembler(ha, "bank", thread)
        a.add(ha, ca)
        a.add(hb, memoryview(bytes(201)))


def test_a_full_queue_makes_the_receiver_wait_and_then_time_out(monkeypatch):
    t = CopyThread(max_pending=2, name="test-copy")
    release = threading.Event()
    real = copier.copy_chunk

    def slow(dst, chunk):
        assert release.wait(10)
        real(dst, chunk)

    monkeypatch.setattr(copier, "copy_chunk", slow)
    job = CopyJob()
    dst = np.zeros(4, dtype=np.uint8)
    try:
        for i in range(2):  # one being copied, one waiting: full
            t.copy(job, dst[i : i + 1], memoryview(bytes([i + 1])), timeout=1)
        with pytest.raises(TimeoutError):
            t.copy(job, dst[2:3], memoryview(b"\x03"), timeout=0.2)
        with pytest.raises(TimeoutError):
            t.wait(job, timeout=0.2)
        release.set()
        t.wait(job, timeout=5)
        assert dst.tolist() == [1, 2, 0, 0]
        t.copy(job, dst[2:3], memoryview(b"\x03"), timeout=1)  # room again
        t.wait(job, timeout=5)
        assert dst.tolist() == [1, 2, 3, 0]
    finally:
        release.set()
        t.close()


def test_a_copy_that_times_out_is_a_wire_error_naming_the_peer(monkeypatch):
    monkeypatch.setattr(wire, "COPY_TIMEOUT_S", 0.2)
    t = CopyThread(max_pending=1, name="test-copy")
    release = threading.Event()
    monkeypatch.setattr(copier, "copy_chunk", lambda dst, chunk: release.wait(10))
    try:
        with pytest.raises(WireError, match="copying the chunks timed out") as e:
            assemble(np.arange(1000, dtype=np.int64), 1000, t)
        assert (e.value.party, e.value.step) == ("bank", "t/1")
    finally:
        release.set()
        t.close()


def test_a_closed_thread_copies_what_it_has_and_then_copies_in_the_caller():
    t = CopyThread(max_pending=64, name="test-copy")
    job = CopyJob()
    dst = np.zeros(64, dtype=np.uint8)
    for i in range(32):
        t.copy(job, dst[i : i + 1], memoryview(bytes([i + 1])), timeout=1)
    t.close()
    for i in range(32, 64):
        t.copy(job, dst[i : i + 1], memoryview(bytes([i + 1])), timeout=1)
    t.wait(job, timeout=5)
    assert dst.tolist() == list(range(1, 65))
