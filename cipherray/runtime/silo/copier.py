"""A thread that copies received chunks into their message's buffer, so the gRPC receive
loop reads the next chunk meanwhile (`Transport(copy_thread=True)`).

One thread, one FIFO queue: chunks are copied in the order they were handed over, and a
message waits for its own copies with a fence (an event queued after its last chunk).
At most `max_pending` chunks wait to be copied; the receive loop waits beyond that, so
a slow copy slows the sender down (backpressure) instead of holding received chunks.
The copy itself is a NumPy copy, which lets go of the GIL.
"""

from __future__ import annotations

import queue
import threading

import numpy as np


class CopyJob:
    """The copies of one message: `error` is the first copy that failed, if any."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None


class CopyThread:
    """Copies chunks into buffers on a daemon thread of its own; see the module."""

    def __init__(self, max_pending: int = 8, name: str = "silo-copy"):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._room = threading.Semaphore(max(1, max_pending))
        self._closed = False
        self._lock = threading.Lock()  # nothing is queued after the end
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def copy(self, job: CopyJob, dst: np.ndarray, chunk: memoryview, timeout: float) -> None:
        """Copy `chunk` into `dst` (uint8, same length) on the thread, or here if the
        thread is closed. Waits up to `timeout` s for room; TimeoutError beyond."""
        if not self._room.acquire(timeout=timeout):
            raise TimeoutError("no room to copy a chunk")
        with self._lock:
            if not self._closed:
                self._queue.put((job, dst, chunk))
                return
        self._room.release()
        copy_chunk(dst, chunk)

    def wait(self, job: CopyJob, timeout: float) -> None:
        """Return once every chunk handed over so far is copied; TimeoutError beyond
        `timeout` s, or the copy's own error."""
        fence = threading.Event()
        with self._lock:
            closed = self._closed
            if not closed:
                self._queue.put((job, None, fence))
        if closed:  # the thread copies what it has, then ends
            self._thread.join(timeout)
            done = not self._thread.is_alive()
        else:
            done = fence.wait(timeout)
        if not done:
            raise TimeoutError("copying the chunks did not finish")
        if job.error is not None:
            raise job.error

    def close(self) -> None:
        """End the thread once it has copied what it has; later copies happen inline."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, dst, chunk = item
            if dst is None:
                chunk.set()  # a fence: every copy before it is done
                continue
            try:
                if job.error is None:
                    copy_chunk(dst, chunk)
            except BaseException as e:  # (sizes are checked before: not expected)
                job.error = e
            finally:
                self._room.release()


def copy_chunk(dst: np.ndarray, chunk: memoryview) -> None:
    """`chunk`'s bytes into `dst` (uint8 of the same length), one memcpy."""
    np.copyto(dst, np.frombuffer(chunk, dtype=np.uint8))
