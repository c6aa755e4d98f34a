"""Receive buffers of large messages, reused once nothing uses them.

A large message is received into one buffer of its size, allocated by the gRPC handler's
thread. glibc serves such a block from a thread's arena by mmap (a thread arena's heaps
are at most 64 MiB, whatever ``mallopt`` says), so every large message would take a page
fault, and the kernel's zeroing, on every page of a fresh buffer: on loopback that cost
as much as copying the chunks into it. `BufferPool` keeps the mappings of large buffers
and hands one out again once no array refers to it any more (its reference count, which
every NumPy view of it holds, is back to the pool's own): the pages are then already
there. The pool keeps at most `max_bytes` of mappings; beyond that a buffer is an
ordinary one, freed when its last array goes.
"""

from __future__ import annotations

import mmap
import sys
import threading

import numpy as np

MIN_POOLED = 1 << 22  # smaller buffers come from malloc (heap, reused by glibc itself)
_ROUND = 1 << 21  # mappings in whole huge pages
_ANONYMOUS = hasattr(mmap, "MAP_ANONYMOUS") and hasattr(mmap, "MAP_PRIVATE")  # (POSIX)


def _refs(maps: list, i: int) -> int:
    """The reference count of ``maps[i]``, as seen from here."""
    return sys.getrefcount(maps[i])


# the count of an object that only the pool's list refers to (measured, not assumed: what
# getrefcount adds for its argument is the interpreter's business)
_FREE_REFS = _refs([object()], 0)


class BufferPool:
    """Writable uint8 buffers of a given size, from reused anonymous mappings."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = int(max_bytes)
        self._maps: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.reused = 0  # buffers handed out again (for tests and benchmarks)

    def take(self, n: int) -> np.ndarray:
        """A writable uint8 array of `n` bytes (contents undefined)."""
        if n < MIN_POOLED or self.max_bytes <= 0 or not _ANONYMOUS:
            return np.empty(n, dtype=np.uint8)
        size = -(-n // _ROUND) * _ROUND
        with self._lock:
            best, best_size = -1, 0
            for i in range(len(self._maps)):
                have = len(self._maps[i])
                if (
                    size <= have <= 2 * size
                    and (best < 0 or have < best_size)
                    and _refs(self._maps, i) == _FREE_REFS
                ):
                    best, best_size = i, have
            if best >= 0:
                m = self._maps.pop(best)
                self._maps.append(m)  # the most recently used last
                self.reused += 1
                return np.frombuffer(m, dtype=np.uint8, count=n)
            m = _mapping(size)
            if self._room(size):
                self._maps.append(m)
        return np.frombuffer(m, dtype=np.uint8, count=n)

    def _room(self, size: int) -> bool:
        """Whether a new mapping of `size` fits, dropping unused ones, oldest first."""
        total = sum(len(m) for m in self._maps)
        i = 0
        while total + size > self.max_bytes and i < len(self._maps):
            if _refs(self._maps, i) == _FREE_REFS:
                total -= len(self._maps.pop(i))  # unmapped when its last reference goes
            else:
                i += 1
        return total + size <= self.max_bytes

    def clear(self) -> None:
        """Keep nothing more (a buffer still in use is freed when its last array goes)."""
        with self._lock:
            self._maps.clear()

    def pooled_bytes(self) -> int:
        with self._lock:
            return sum(len(m) for m in self._maps)


def _mapping(size: int) -> mmap.mmap:
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            m.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # not supported here: ordinary pages
            pass
    return m
