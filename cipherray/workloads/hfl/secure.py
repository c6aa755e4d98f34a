"""SecAgg+ between a server party and the places that host a round's clients.

The steps of `protocols/secagg/cohort.py`, split into the functions that run at the
server (`plan`, `keys`, `route`, `requests`, `aggregate`) and at each place
(`advertise`, `share`, `masked_input`, `unmask`); `train` sends every message with
`rt.send` under the declared protocol `PROTOCOL`. The round's members are the clients
that trained successfully; the server samples the graph over them (SecAgg+'s sparse
graph for a population, the complete graph for silos) and fixes the quantiser, both
public. Simulated dropout (`dropout`) removes that fraction of each place's members
after the key shares and again after the masked inputs, drawn from the CSPRNG.

What the server learns: the members, the public keys, ciphertexts it cannot open,
masked vectors (each uniformly distributed on its own) and the sum of the quantised
vectors of the clients in U3; never a client's vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cipherray.protocols.secagg import cohort as sa
from cipherray.protocols.secagg.graph import (
    GraphParameters,
    build_graph,
    choose_parameters,
    complete_parameters,
)
from cipherray.protocols.secagg.protocol import RoundConfig
from cipherray.protocols.secagg.quantize import Quantizer
from cipherray.protocols.secagg.simulation import drop_fraction

PROTOCOL = {
    "plan": "the round's SecAgg+ graph, members and quantiser (public)",
    "keys": "a place's clients' public keys / their neighbours' public keys",
    "shares": "AES-GCM ciphertexts of Shamir shares, to be routed to their receivers",
    "masked": "masked update vectors of a place's clients",
    "unmask": "the server's unmask request / the clients' shares for it",
}


@dataclass(frozen=True)
class RoundPlan:
    config: RoundConfig
    members: np.ndarray  # sorted client ids; round index i is members[i]
    params: GraphParameters
    quantizer: Quantizer | None  # None: the rule's vectors are integers already
    dropout: float


def plan(
    members: np.ndarray,
    length: int,
    bits: int,
    dropout: float,
    complete: bool,
    corruption: float,
    quantizer_of: Any,
) -> RoundPlan:
    """At the server: the round's graph over the members and its quantiser."""
    n = int(members.size)
    total = 1 - (1 - dropout) ** 2
    if complete:
        params = complete_parameters(n)
    else:
        params = choose_parameters(n, total, corruption)
    config = RoundConfig(build_graph(params), length, bits)
    quantizer = quantizer_of(n, bits) if quantizer_of is not None else None
    return RoundPlan(config, np.asarray(members, np.int64), params, quantizer, dropout)


def _ids(state: Any, plan_: RoundPlan) -> np.ndarray:
    return np.searchsorted(plan_.members, state.fitted)


# -- at a place ------------------------------------------------------------------------
def advertise(state: Any, plan_: RoundPlan) -> tuple[sa.KeyAdvert, Any]:
    """Step 1: fresh key pairs for this place's members."""
    state.cohort = sa.Cohort(_ids(state, plan_), plan_.config)
    return state.cohort.advertise(), state


def share(state: Any, keys: sa.NeighbourKeys) -> tuple[sa.SealedShares, Any]:
    """Step 2: agreements, Shamir shares, sealed for each neighbour."""
    return state.cohort.share_keys(keys), state


def masked_input(
    state: Any, inbox: sa.Inbox, plan_: RoundPlan, rule: Any
) -> tuple[sa.MaskedInputs, Any]:
    """Step 3: the members still here send their masked, quantised vectors."""
    ids = state.cohort.ids
    kept, _ = drop_fraction(list(range(ids.size)), plan_.dropout)
    sending = np.zeros(ids.size, dtype=bool)
    sending[kept] = True
    if plan_.quantizer is not None:
        ring = plan_.quantizer.quantize(state.vectors)
    else:
        ring = rule.to_ring(state.vectors, plan_.config.bits)
    state.vectors = None
    return state.cohort.masked_input(inbox, ring, sending), state


def unmask(state: Any, request: sa.UnmaskRequest, plan_: RoundPlan) -> tuple[sa.UnmaskShares, Any]:
    """Step 4: the members still here answer with their shares."""
    kept, _ = drop_fraction(list(range(request.ids.size)), plan_.dropout)
    responding = np.zeros(state.cohort.ids.size, dtype=bool)
    responding[np.searchsorted(state.cohort.ids, request.ids[kept])] = True
    shares = state.cohort.unmask(request, responding)
    state.cohort = None
    return shares, state


# -- at the server ---------------------------------------------------------------------
def keys(plan_: RoundPlan, *adverts: sa.KeyAdvert) -> tuple:
    """Step 1 at the server: (server state, one NeighbourKeys per place)."""
    server = sa.CohortServer(plan_.config)
    server.cohorts = [a.ids for a in adverts]
    return (server, *server.collect_keys(list(adverts)))


def route(server: sa.CohortServer, places: list[int], *sealed: sa.SealedShares) -> tuple:
    """Step 2 at the server: one Inbox for each place that sent its shares."""
    cohorts = [server.cohorts[i] for i in places]
    return (server, *server.route_shares(list(sealed), cohorts))


def requests(server: sa.CohortServer, *masked: sa.MaskedInputs) -> tuple:
    """Steps 3-4 at the server: record U3, one UnmaskRequest per place that sent."""
    return (server, *server.collect_masked(list(masked)))


@dataclass(frozen=True)
class SecureTotal:
    total: np.ndarray  # decoded sum (floats)
    included: np.ndarray  # client ids in U3
    dropped: list[tuple[int, str]]  # members left out, with the stage


def aggregate(
    server: sa.CohortServer, plan_: RoundPlan, rule: Any, *shares: sa.UnmaskShares
) -> SecureTotal:
    """Step 5 at the server: the decoded sum of the included clients' vectors."""
    ring = server.aggregate(list(shares))
    members = plan_.members
    included = members[server.inputs]
    n = int(server.inputs.sum())
    if plan_.quantizer is not None:
        total = plan_.quantizer.decode_sum(ring, n)
    else:
        total = rule.from_ring(ring, plan_.config.bits)
    dropped = [
        (int(c), "dropped out before sending its key shares") for c in members[~server.senders]
    ]
    dropped += [
        (int(c), "dropped out before sending its masked input")
        for c in members[server.senders & ~server.inputs]
    ]
    return SecureTotal(total, included, dropped)
