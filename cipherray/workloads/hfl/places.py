"""Where a federation's clients run: chunks of a population's clients, or silos.

A `Place` is a group of clients that run together in one worker: a chunk of a runtime
population (`Party.chunks`, clients c with c % workers == w on worker w) or one silo
(an ordinary party that is one client). `places_of` turns the `clients=` argument of
`train` into places and global client ids; the same training loop then drives both
the cross-device and the cross-silo form. Several populations (in cross-silo mode, one
per organisation, each hosted by that organisation's process) number their clients one
after the other: population k's client j has the global id (clients of populations
0..k-1) + j.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Place:
    """Clients `cids` (global ids) that run in one worker of `party`."""

    party: Any  # a runtime Party (a population or a silo)
    worker: int | None  # the population worker; None for a silo
    cids: np.ndarray

    @property
    def name(self) -> str:
        pname = self.party.name
        return pname if self.worker is None else f"{pname}[worker {self.worker}]"

    def step(self, fn: Callable, num_returns: int = 1, declare: str | None = None) -> Any:
        """`fn` as a step at this place's worker."""
        kw: dict[str, Any] = {"num_returns": num_returns}
        if declare is not None:
            kw["declare"] = declare
        if self.worker is not None:
            kw["worker"] = self.worker
        return self.party(fn, **kw)


def places_of(clients: Any, chunk_size: int) -> tuple[list[Place], bool]:
    """(places, is_population) for a population, a list of populations or a list of
    silos."""
    if isinstance(clients, Sequence) and not isinstance(clients, str):
        items = list(clients)
        if not items:
            raise ValueError("clients= is an empty list")
        names = [s.name for s in items]
        if len(set(names)) != len(names):
            raise ValueError(f"a place is listed twice: {names}")
        hosting = [bool(getattr(s, "clients", 0)) for s in items]
        if any(hosting) and not all(hosting):
            raise ValueError("clients= takes populations or ordinary parties, not both")
        if all(hosting):
            return _population_places(items, chunk_size), True
        return [Place(s, None, np.array([i])) for i, s in enumerate(items)], False
    if not getattr(clients, "clients", 0):
        raise ValueError("clients= must be a population (rt.population(...)) or a list of parties")
    return _population_places([clients], chunk_size), True


def _population_places(populations: list, chunk_size: int) -> list[Place]:
    places, offset = [], 0
    for pop in populations:
        places += [Place(pop, w, offset + np.asarray(c)) for w, c in pop.chunks(chunk_size)]
        offset += pop.clients
    return places
