"""A party: a named trust domain with its own actor group."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cipherray.runtime.config import PartySpec
from cipherray.runtime.errors import ConfigError
from cipherray.runtime.refs import PartyRef
from cipherray.runtime.values import AGGREGATE, PUBLISHED

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime.runtime import Runtime


class Party:
    """`party(fn)(*args)` runs `fn` in this party's actor group and returns a PartyRef."""

    def __init__(self, rt: Runtime, spec: PartySpec):
        self._rt = rt
        self.spec = spec
        self.name = spec.name
        self._rr = itertools.cycle(range(spec.workers))

    @property
    def workers(self) -> int:
        return self.spec.workers

    @property
    def clients(self) -> int:
        """Virtual clients hosted by this party's workers (0: an ordinary party)."""
        return self.spec.clients

    def chunks(self, size: int, cids: Sequence[int] | None = None) -> list[tuple[int, np.ndarray]]:
        """A population's clients (all, or `cids`) in chunks of at most `size`, each with
        the worker that hosts them: client c always lives on worker c % workers, so a
        chunk's per-client state can stay in that worker between rounds. Ray's overhead
        is paid per chunk, not per client."""
        if not self.clients:
            raise ConfigError(f"'{self.name}' is an ordinary party, not a population")
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"chunk size must be an int >= 1, got {size!r}")
        ids = np.arange(self.clients) if cids is None else np.asarray(cids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.clients):
            raise ConfigError(f"population '{self.name}' has clients 0..{self.clients - 1}")
        out = []
        for w in range(self.spec.workers):
            mine = ids[ids % self.spec.workers == w]
            out += [(w, mine[i : i + size]) for i in range(0, mine.size, size)]
        return out

    def _next_worker(self) -> int:
        """Round robin over the workers; a party with a GPU runs its steps on worker 0,
        the one that holds the GPU (its key material and device buffers stay there).
        `map` still spreads items over the whole pool."""
        if self.spec.gpus:
            return 0
        return next(self._rr)

    def __call__(
        self,
        fn: Callable,
        *,
        name: str | None = None,
        num_returns: int = 1,
        declare: str | None = None,
        rows: int | None = None,
        worker: int | None = None,
    ) -> Callable[..., Any]:
        """Wrap `fn` to run here. `num_returns > 1` gives a tuple of PartyRefs.

        The results are this party's values (provenance: this party and the owners of
        the arguments). `declare="aggregate"` states that they are aggregates (of at
        least `rows` rows, if given), e.g. counts per category: the owner's
        declaration, which the policy's aggregate rules then use. `declare="public"`
        publishes them: metadata such as column types or row counts that the owner
        lets every party and the driver read. `worker` picks the worker of the pool
        (default: the worker that holds the first argument, else round robin)."""
        if not callable(fn):
            raise TypeError(f"party {self.name}: expected a function, got {type(fn).__name__}")
        if declare not in (None, AGGREGATE, PUBLISHED):
            raise ConfigError(f"party {self.name}: declare must be None, 'aggregate' or 'public'")
        if worker is not None and not 0 <= worker < self.spec.workers:
            raise ConfigError(f"party {self.name}: worker must be in 0..{self.spec.workers - 1}")
        step = name or getattr(fn, "__name__", "fn")
        rt = self._rt

        def remote(*args: Any, **kwargs: Any) -> Any:
            return rt._party_call(self, fn, args, kwargs, step, num_returns, declare, rows, worker)

        remote.__name__ = f"{self.name}.{step}"
        return remote

    def map(
        self,
        fn: Callable,
        items: Iterable[Any],
        workers: int | None = None,
        window: int | None = None,
        progress: bool = False,
    ) -> Iterator[PartyRef]:
        """Run `fn(item)` for each item on this party's worker pool, yielding a PartyRef per
        item in order. At most `window` calls are in flight (default 2 per worker), so a
        stream of thousands of items (shards, virtual clients) keeps memory bounded:
        a new call starts only after the oldest result has been handed out.
        `progress=True` shows a progress bar (tqdm) of finished items."""
        self._rt._check_open()
        n_workers = self.spec.workers if workers is None else int(workers)
        if not 1 <= n_workers <= self.spec.workers:
            raise ValueError(
                f"party {self.name}: workers must be in 1..{self.spec.workers}, got {workers}"
            )
        window = 2 * n_workers if window is None else int(window)
        if window < 1:
            raise ValueError("window must be >= 1")
        step = getattr(fn, "__name__", "fn")
        rt = self._rt
        pool = itertools.cycle(range(n_workers))
        inflight: deque[PartyRef] = deque()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = len(items) if hasattr(items, "__len__") else None
            bar = tqdm(total=total, desc=f"{self.name}.map({step})", leave=False)
        for item in items:
            if len(inflight) >= window:
                head = inflight.popleft()
                rt._wait(head._h)
                if bar is not None:
                    bar.update()
                yield head
            ref = rt._party_call(self, fn, (item,), {}, f"map/{step}", 1, None, None, next(pool))
            inflight.append(ref)
        while inflight:
            head = inflight.popleft()
            rt._wait(head._h)
            if bar is not None:
                bar.update()
            yield head
        if bar is not None:
            bar.close()

    def __repr__(self) -> str:
        if self.clients:
            return f"Population({self.name!r}, clients={self.clients}, workers={self.spec.workers})"
        return f"Party({self.name!r}, workers={self.spec.workers})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Party) and other.name == self.name and other._rt is self._rt

    def __hash__(self) -> int:
        return hash(("party", self.name))
