"""SecAgg+ between a server party and the places that host a round's clients.

The steps of `protocols/secagg/cohort.py`, split into the functions that run at the
server (`plan`, `keys`, `route`, `requests`, `aggregate`) and at each place
(`advertise`, `share`, `masked_input`, `unmask`); `train` sends every message with
`rt.send` under the declared protocol `PROTOCOL`. Every message is plain typed data
(`secure_messages.py`: dicts of arrays, never objects, so it crosses between
organisations too), and every step reads the messages it receives with the checks
there (a malformed one: `WireError` naming its sender and step). The round's members
are the clients that trained successfully; the server samples the graph over them
(SecAgg+'s sparse graph for a population, the complete graph for silos); its degree,
threshold and the quantiser follow from the public settings (`PlanRules`), which every
place recomputes. Simulated dropout (`PlanRules.dropout`) removes that fraction of each
place's members after the key shares and again after the masked inputs, drawn from the
CSPRNG.

What the server learns: the members, the public keys, ciphertexts it cannot open,
masked vectors (each uniformly distributed on its own) and the sum of the quantised
vectors of the clients in U3; never a client's vector. A place's secret keys, mask
seeds and vectors stay in its state (`ChunkState`) and never enter a message.
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
from cipherray.runtime.errors import WireError
from cipherray.workloads.hfl import secure_messages as sm
from cipherray.workloads.hfl.secure_messages import PlanRules

PROTOCOL = {
    "plan": "the round's SecAgg+ graph, members, vector length and round id (public)",
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


def parameters(n: int, rules: PlanRules) -> GraphParameters:
    """The graph's degree and threshold for n clients under the public settings."""
    if rules.complete:
        return complete_parameters(n)
    return choose_parameters(n, 1 - (1 - rules.dropout) ** 2, rules.corruption)


def plan(members: np.ndarray, length: int, rules: PlanRules) -> dict:
    """At the server: the round plan message (the graph over the members, sampled from
    the CSPRNG, and a fresh round id)."""
    members = np.asarray(members, np.int64)
    config = RoundConfig(build_graph(parameters(int(members.size), rules)), length, rules.bits)
    return sm.plan_message(members, config.graph, length, config.round_id)


def read_plan(m: Any, sender: str, rules: PlanRules) -> RoundPlan:
    """The plan of a plan message, checked: the receiver recomputes the degree, the
    threshold and the quantiser from its own settings."""
    computed: list[GraphParameters] = []

    def degree_of(n: int) -> tuple[int, int]:
        computed.append(parameters(n, rules))
        return computed[0].degree, computed[0].threshold

    members, graph, length, round_id = sm.read_plan(m, sender, degree_of)
    n = int(members.size)
    quantizer = rules.quantizer_of(n, rules.bits) if rules.quantizer_of is not None else None
    config = RoundConfig(graph, length, rules.bits, round_id)
    return RoundPlan(config, members, computed[0], quantizer, rules.dropout)


# -- at a place ------------------------------------------------------------------------
def advertise(state: Any, plan_msg: dict, rules: PlanRules, server: str) -> tuple[dict, Any]:
    """Step 1: fresh key pairs for this place's members."""
    plan_ = read_plan(plan_msg, server, rules)
    fitted = np.asarray(state.fitted, np.int64)
    if not np.isin(fitted, plan_.members).all():
        raise WireError(server, sm.PLAN_TAG, "the plan leaves out clients of this place")
    if state.vectors.shape[1:] != (plan_.config.length,):
        raise WireError(
            server, sm.PLAN_TAG,
            f"the plan's vector length {plan_.config.length} is not this place's "
            f"{state.vectors.shape[1:]}",
        )  # fmt: skip
    state.plan = plan_
    state.cohort = sa.Cohort(np.searchsorted(plan_.members, fitted), plan_.config)
    return sm.message(state.cohort.advertise()), state


def share(state: Any, keys_msg: dict, server: str) -> tuple[dict, Any]:
    """Step 2: agreements, Shamir shares, sealed for each neighbour."""
    c = state.cohort
    keys = sm.read_neighbour_keys(keys_msg, server, c.ids, c.neighbours.shape[1])
    return sm.message(c.share_keys(keys)), state


def masked_input(state: Any, inbox_msg: dict, rule: Any, server: str) -> tuple[dict, Any]:
    """Step 3: the members still here send their masked, quantised vectors."""
    plan_, c = state.plan, state.cohort
    inbox = sm.read_inbox(inbox_msg, server, c.ids, c.neighbours.shape[1])
    kept, _ = drop_fraction(list(range(c.ids.size)), plan_.dropout)
    sending = np.zeros(c.ids.size, dtype=bool)
    sending[kept] = True
    if plan_.quantizer is not None:
        ring = plan_.quantizer.quantize(state.vectors)
    else:
        ring = rule.to_ring(state.vectors, plan_.config.bits)
    state.vectors = None
    return sm.message(c.masked_input(inbox, ring, sending)), state


def unmask(state: Any, request_msg: dict, server: str) -> tuple[dict, Any]:
    """Step 4: the members still here answer with their shares."""
    plan_, c = state.plan, state.cohort
    n, k = int(plan_.members.size), c.neighbours.shape[1]
    request = sm.read_request(request_msg, server, n, c.ids, k)
    kept, _ = drop_fraction(list(range(request.ids.size)), plan_.dropout)
    responding = np.zeros(c.ids.size, dtype=bool)
    responding[np.searchsorted(c.ids, request.ids[kept])] = True
    shares = c.unmask(request, responding)
    state.cohort = state.plan = None
    return sm.message(shares), state


# -- at the server ---------------------------------------------------------------------
@dataclass
class ServerRound:
    """The server's state of one round: the protocol server, the plan, and the name of
    the place behind each cohort (in the order the places advertised keys)."""

    server: sa.CohortServer
    plan: RoundPlan
    names: list[str]

    @property
    def n(self) -> int:
        return int(self.plan.members.size)

    @property
    def k(self) -> int:
        return self.server.k


def keys(plan_msg: dict, rules: PlanRules, me: str, names: list[str], *adverts: dict) -> tuple:
    """Step 1 at the server: (server state, one NeighbourKeys message per place)."""
    plan_ = read_plan(plan_msg, me, rules)
    srv = ServerRound(sa.CohortServer(plan_.config), plan_, list(names))
    read = [sm.read_advert(a, name, srv.n) for a, name in zip(adverts, names)]
    claimed = np.zeros(srv.n, dtype=bool)
    for a, name in zip(read, names):
        if claimed[a.ids].any():
            raise WireError(name, sm.KEYS_TAG, "keys for a client that another place advertised")
        claimed[a.ids] = True
    srv.server.cohorts = [a.ids for a in read]
    return (srv, *[sm.message(x) for x in srv.server.collect_keys(read)])


def route(srv: ServerRound, places: list[int], *sealed: dict) -> tuple:
    """Step 2 at the server: one Inbox message for each place that sent its shares."""
    cohorts = [srv.server.cohorts[i] for i in places]
    read = [sm.read_sealed(s, srv.names[i], c, srv.k) for s, i, c in zip(sealed, places, cohorts)]
    return (srv, *[sm.message(x) for x in srv.server.route_shares(read, cohorts)])


def requests(srv: ServerRound, places: list[int], *masked: dict) -> tuple:
    """Steps 3-4 at the server: record U3, one UnmaskRequest message per place that sent."""
    read = [
        sm.read_masked(m, srv.names[i], srv.n, srv.server.cohorts[i], srv.plan.config.length,
                       srv.plan.config.bits)
        for m, i in zip(masked, places)
    ]  # fmt: skip
    return (srv, *[sm.message(x) for x in srv.server.collect_masked(read)])


@dataclass(frozen=True)
class SecureTotal:
    total: np.ndarray  # decoded sum (floats)
    included: np.ndarray  # client ids in U3
    dropped: list[tuple[int, str]]  # members left out, with the stage


def aggregate(srv: ServerRound, rule: Any, places: list[int], *shares: dict) -> SecureTotal:
    """Step 5 at the server: the decoded sum of the included clients' vectors."""
    read = [
        sm.read_unmask_shares(s, srv.names[i], srv.n, srv.server.cohorts[i], srv.k)
        for s, i in zip(shares, places)
    ]
    server, plan_ = srv.server, srv.plan
    ring = server.aggregate(read)
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
