"""SecAgg+ messages of hfl (`workloads/hfl/secure.py`, `secure_messages.py`) as plain
typed data: a whole round whose every message goes through the cross-silo wire encoding
(`wire.pack_value` / `unpack_value`) gives the sum of the places' vectors; a malformed
message raises `WireError` naming its sender and step and leaves the receiver's state
as it was; no message carries a place's secrets or its vectors."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from cipherray.protocols.secagg.quantize import Quantizer
from cipherray.runtime.errors import WireError
from cipherray.runtime.silo import wire
from cipherray.workloads.hfl import chunk, secure
from cipherray.workloads.hfl import secure_messages as sm

D = 7  # vector length


def _quantizer(n: int, bits: int) -> Quantizer:
    return Quantizer.for_clients(n, 1.0, bits)


SILOS = secure.PlanRules(32, 0.0, True, 0.05, _quantizer)
POPULATION = secure.PlanRules(64, 0.0, False, 0.05, _quantizer)


def cross(value, sender: str, tag: str):
    """What the receiving organisation's process gets: the value through the typed wire
    encoding (never an object)."""
    return wire.unpack_value(wire.pack_value(value), sender, tag)


def places(per_place: list[int], seed: int = 0) -> list[chunk.ChunkState]:
    gen = np.random.default_rng(seed)  # test data only
    out, first = [], 0
    for m in per_place:
        st = chunk.ChunkState(np.arange(first, first + m, dtype=np.int64), source=None)
        st.fitted = st.cids.copy()
        st.vectors = gen.uniform(-0.5, 0.5, (m, D))
        out.append(st)
        first += m
    return out


class Round:
    """One SecAgg+ round between a server and `states`, every message crossing the wire
    encoding; `sent` keeps each message as it arrived (for the tampering tests)."""

    def __init__(self, states: list[chunk.ChunkState], rules: secure.PlanRules):
        self.states, self.rules = states, rules
        self.names = [f"silo{i}" for i in range(len(states))]
        self.sent: dict[str, list] = {}
        self.expected = np.sum([s.vectors.sum(axis=0) for s in states], axis=0)

    def keep(self, step: str, msgs: list) -> list:
        self.sent[step] = msgs
        return msgs

    def to_places(self, msgs: list, tag: str) -> list:
        return self.keep(tag + "@place", [cross(m, "server", tag) for m in msgs])

    def to_server(self, msgs: list, tag: str) -> list:
        return self.keep(tag + "@server", [cross(m, n, tag) for m, n in zip(msgs, self.names)])

    def run(self) -> secure.SecureTotal:
        st, rules, every = self.states, self.rules, list(range(len(self.states)))
        members = np.sort(np.concatenate([s.fitted for s in st]))
        plan = secure.plan(members, D, rules)
        plans = self.to_places([plan] * len(st), sm.PLAN_TAG)
        adverts = [secure.advertise(s, p, rules, "server")[0] for s, p in zip(st, plans)]
        srv, *nks = secure.keys(plan, rules, "server", self.names,
                                *self.to_server(adverts, sm.KEYS_TAG))  # fmt: skip
        nks = self.to_places(nks, sm.KEYS_TAG)
        sealed = [secure.share(s, nk, "server")[0] for s, nk in zip(st, nks)]
        srv, *inboxes = secure.route(srv, every, *self.to_server(sealed, sm.SHARES_TAG))
        inboxes = self.to_places(inboxes, sm.SHARES_TAG)
        masked = [secure.masked_input(s, b, None, "server")[0] for s, b in zip(st, inboxes)]
        srv, *reqs = secure.requests(srv, every, *self.to_server(masked, sm.MASKED_TAG))
        reqs = self.to_places(reqs, sm.UNMASK_TAG)
        shares = [secure.unmask(s, r, "server")[0] for s, r in zip(st, reqs)]
        self.srv = srv
        return secure.aggregate(srv, None, every, *self.to_server(shares, sm.UNMASK_TAG))


@pytest.mark.parametrize(
    ("per_place", "rules"),
    [([1, 1, 1], SILOS), ([4, 5, 3], POPULATION)],
    ids=["three silos, complete graph", "three places of a population, Z_2^64"],
)
def test_a_round_through_the_wire_encoding_sums_the_vectors(per_place, rules):
    r = Round(places(per_place), rules)
    out = r.run()
    n = sum(per_place)
    np.testing.assert_array_equal(out.included, np.arange(n))
    assert out.dropped == []
    bound, _ = _quantizer(n, rules.bits).error_bound(n)
    np.testing.assert_allclose(out.total, r.expected, atol=bound)
    for step, msgs in r.sent.items():  # every message is plain data: dicts of arrays
        for m in msgs:
            assert type(m) is dict, step
            assert all(isinstance(v, np.ndarray | int | bytes) for v in m.values()), step


def test_no_message_holds_a_place_secret_or_vector(monkeypatch):
    st = places([1, 1, 1], seed=3)
    secrets = []
    for s in st:  # the place's vectors, captured before the round consumes them
        secrets.append(s.vectors.tobytes())
    r = Round(st, SILOS)
    orig_share = secure.share

    def share_and_record(state, keys_msg, server):  # the cohort's secrets, once drawn
        c = state.cohort
        for a in (c._channel_sk, c._mask_sk, c._self_seed):  # test-only look inside
            secrets.extend(bytes(row) for row in a)
        return orig_share(state, keys_msg, server)

    monkeypatch.setattr(secure, "share", share_and_record)
    r.run()
    sent = b"".join(
        b"".join(wire.pack_value(m)) for msgs in r.sent.values() for m in msgs
    )  # fmt: skip
    assert len(secrets) == 3 + 9
    for s in secrets:
        assert s not in sent


# -- malformed messages: WireError naming the sender and the step --------------------------
@pytest.fixture(scope="module")
def done_round() -> Round:
    r = Round(places([2, 2, 1]), SILOS)
    r.run()
    return r


def _readers(r: Round) -> dict:
    """Each message kind: (a received one, the function that reads it, its sender, tag)."""
    srv = r.srv
    n, k = srv.n, srv.k
    cohort0 = srv.server.cohorts[0]
    rules = r.rules
    return {
        "plan": (r.sent[sm.PLAN_TAG + "@place"][0],
                 functools.partial(secure.read_plan, sender="server", rules=rules),
                 "server", sm.PLAN_TAG),
        "advert": (r.sent[sm.KEYS_TAG + "@server"][0],
                   functools.partial(sm.read_advert, sender="silo0", n=n), "silo0", sm.KEYS_TAG),
        "neighbour keys": (r.sent[sm.KEYS_TAG + "@place"][0],
                           functools.partial(sm.read_neighbour_keys, sender="server",
                                             ids=cohort0, k=k), "server", sm.KEYS_TAG),
        "sealed": (r.sent[sm.SHARES_TAG + "@server"][0],
                   functools.partial(sm.read_sealed, sender="silo0", ids=cohort0, k=k),
                   "silo0", sm.SHARES_TAG),
        "inbox": (r.sent[sm.SHARES_TAG + "@place"][0],
                  functools.partial(sm.read_inbox, sender="server", ids=cohort0, k=k),
                  "server", sm.SHARES_TAG),
        "masked": (r.sent[sm.MASKED_TAG + "@server"][0],
                   functools.partial(sm.read_masked, sender="silo0", n=n, cohort=cohort0,
                                     length=D, bits=32), "silo0", sm.MASKED_TAG),
        "request": (r.sent[sm.UNMASK_TAG + "@place"][0],
                    functools.partial(sm.read_request, sender="server", n=n, cohort=cohort0,
                                      k=k), "server", sm.UNMASK_TAG),
        "unmask shares": (r.sent[sm.UNMASK_TAG + "@server"][0],
                          functools.partial(sm.read_unmask_shares, sender="silo0", n=n,
                                            cohort=cohort0, k=k), "silo0", sm.UNMASK_TAG),
    }  # fmt: skip


KINDS = ["plan", "advert", "neighbour keys", "sealed", "inbox", "masked", "request",
         "unmask shares"]  # fmt: skip


def _first_array(m: dict) -> str:
    return next(k for k, v in m.items() if isinstance(v, np.ndarray))


def _tampered(m: dict, how: str):
    m = dict(m)
    name = _first_array(m)
    last = [k for k, v in m.items() if isinstance(v, np.ndarray)][-1]
    if how == "not a dict":
        return list(m.values())
    if how == "missing field":
        del m[last]
    elif how == "extra field":
        m["extra"] = np.zeros(1)
    elif how == "object in place of an array":
        m[last] = m[last].tolist()
    elif how == "wrong dtype":
        m[last] = m[last].astype(np.float64)
    elif how == "truncated":
        m[last] = m[last][..., :-1] if m[last].ndim > 1 else m[last][:-1]
    elif how == "extra dimension":
        m[last] = m[last][None]
    elif how == "id out of range":
        m[name] = m[name].copy()
        m[name][-1] = 10_000
    elif how == "negative id":
        m[name] = m[name].copy()
        m[name][0] = -1
    return m


HOWS = ["not a dict", "missing field", "extra field", "object in place of an array",
        "wrong dtype", "truncated", "extra dimension", "id out of range", "negative id"]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "how"),
    # a plan's members are the population's own client ids: any id >= 0 is one
    [(k, h) for k in KINDS for h in HOWS if (k, h) != ("plan", "id out of range")],
)
def test_a_malformed_message_names_its_sender_and_step(done_round, kind, how):
    msg, read, sender, tag = _readers(done_round)[kind]
    read(msg)  # the message as sent is accepted
    with pytest.raises(WireError) as e:
        read(_tampered(msg, how))
    assert e.value.party == sender and e.value.step == tag
    assert "malformed SecAgg+ message" in str(e.value)


def test_ids_must_be_the_senders_cohort(done_round):
    r = done_round
    msgs = _readers(r)
    srv = r.srv
    other = srv.server.cohorts[1]
    advert, *_ = msgs["advert"]
    dup = {**advert, "ids": np.array([0, 0], np.int64)}
    with pytest.raises(WireError, match="twice"):
        sm.read_advert(dup, "silo0", srv.n)
    masked, *_ = msgs["masked"]
    with pytest.raises(WireError, match="cohort") as e:  # silo1's clients, claimed by silo0
        sm.read_masked(masked, "silo0", srv.n, other, D, 32)
    assert e.value.party == "silo0"
    sealed, *_ = msgs["sealed"]
    with pytest.raises(WireError, match="advertised"):
        sm.read_sealed(sealed, "silo0", other, srv.k)
    req, *_ = msgs["request"]
    for bad in (-1, srv.n + 1, True, 2.0):
        with pytest.raises(WireError, match="n_inputs"):
            sm.read_request({**req, "n_inputs": bad}, "server", srv.n, srv.server.cohorts[0], 4)


def test_two_places_cannot_advertise_the_same_client():
    st = places([1, 1, 1])
    members = np.arange(3, dtype=np.int64)
    plan = secure.plan(members, D, SILOS)
    adverts = [secure.advertise(s, plan, SILOS, "server")[0] for s in st]
    adverts[2] = {**adverts[2], "ids": np.array([1], np.int64)}  # silo2 claims silo1's client
    with pytest.raises(WireError, match="another place") as e:
        secure.keys(plan, SILOS, "server", ["silo0", "silo1", "silo2"], *adverts)
    assert e.value.party == "silo2" and e.value.step == sm.KEYS_TAG


def _graph(n: int, rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(n, -1)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"members": np.array([0, 2, 1, 3], np.int64)}, "sorted"),
        ({"members": np.array([0, 1], np.int64)}, "3 or more"),
        # silos expect the complete graph: degree 3 for 4 clients
        ({"neighbours": _graph(4, [[1, 3], [2, 0], [3, 1], [0, 2]])}, "shape"),
        ({"neighbours": _graph(4, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 1]])}, "twice"),
        ({"neighbours": _graph(4, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 3]])}, "own"),
        ({"neighbours": _graph(4, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 9]])}, "outside"),
        ({"length": 0}, "length"),
        ({"length": 3.0}, "length"),
        ({"round_id": b"short"}, "round_id"),
    ],
)
def test_a_malformed_plan_is_refused(change, why):
    plan = secure.plan(np.arange(4, dtype=np.int64), D, SILOS)
    secure.read_plan(plan, "server", SILOS)
    with pytest.raises(WireError, match=why) as e:
        secure.read_plan({**plan, **change}, "server", SILOS)
    assert e.value.party == "server" and e.value.step == sm.PLAN_TAG


def test_a_sparse_graph_with_the_wrong_degree_or_asymmetric_is_refused():
    members = np.arange(40, dtype=np.int64)
    plan = secure.plan(members, D, POPULATION)
    got = secure.read_plan(plan, "server", POPULATION)
    k = got.config.graph.degree
    assert not got.params.complete and k < 39
    thinner = {**plan, "neighbours": plan["neighbours"][:, : k - 2]}
    with pytest.raises(WireError, match="shape"):  # fewer neighbours than the bounds need
        secure.read_plan(thinner, "server", POPULATION)
    nb = plan["neighbours"].copy()
    v = next(int(x) for x in range(40) if x not in nb[0] and x != 0)
    nb[0, 0] = v  # 0 lists v, v does not list 0
    with pytest.raises(WireError, match="symmetric"):
        secure.read_plan({**plan, "neighbours": nb}, "server", POPULATION)


def test_a_place_refuses_a_plan_that_leaves_out_its_clients_and_keeps_its_state():
    st = places([1, 1, 1, 1])
    plan = secure.plan(np.array([0, 1, 2], np.int64), D, SILOS)  # no client 3
    with pytest.raises(WireError, match="leaves out") as e:
        secure.advertise(st[3], plan, SILOS, "server")
    assert e.value.party == "server"
    assert st[3].cohort is None and st[3].plan is None
    short = secure.plan(np.arange(4, dtype=np.int64), D + 1, SILOS)
    with pytest.raises(WireError, match="vector length"):
        secure.advertise(st[0], short, SILOS, "server")


def test_after_a_malformed_message_the_place_accepts_the_right_one():
    st = places([1, 1, 1])
    members = np.arange(3, dtype=np.int64)
    plan = secure.plan(members, D, SILOS)
    adverts = [secure.advertise(s, plan, SILOS, "server")[0] for s in st]
    srv, *nks = secure.keys(plan, SILOS, "server", ["a", "b", "c"], *adverts)
    bad = {**nks[0], "channel": nks[0]["channel"][:, :, :16]}
    cohort = st[0].cohort
    with pytest.raises(WireError):
        secure.share(st[0], bad, "server")
    assert st[0].cohort is cohort and not cohort._agreed.any()
    sealed = [secure.share(s, nk, "server")[0] for s, nk in zip(st, nks)]
    srv, *inboxes = secure.route(srv, [0, 1, 2], *sealed)
    assert all(m["present"].all() for m in inboxes)


# -- across organisations: a silo that sends a malformed message is named -------------------
def _silo_data(cids: np.ndarray):
    from cipherray.workloads.hfl import models

    gen = np.random.default_rng(int(cids[0]))  # test data only
    x = gen.normal(size=(1, 20, 3))
    return models.pad([x[0]], [(x[0, :, 0] > 0).astype(np.int64)])


def test_across_organisations_a_malformed_advert_names_the_silo(monkeypatch):
    """Four runtimes (server, three silos) in four threads, cross-silo over mutual TLS;
    silo c's process sends public keys of the wrong length: the server refuses them
    with `WireError` naming c and the step, and every process (c too: it is told)
    ends with that error well within the timeout."""
    import sys
    import threading
    import time
    from pathlib import Path

    import cipherray as cr
    from cipherray.runtime.errors import CipherrayError, PartyError
    from cipherray.runtime.silo import make_dev_pki
    from cipherray.workloads.hfl import models
    from cipherray.workloads.hfl.train import train

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_silo_runtime import addresses

    parties = ["server", "a", "b", "c"]
    pki = Path(__import__("tempfile").mkdtemp())
    make_dev_pki(parties, pki)
    addrs = addresses(parties)
    honest = secure.advertise

    def advertise(state, plan_msg, rules, server):
        msg, state = honest(state, plan_msg, rules, server)
        if int(state.cids[0]) == 2:  # silo c
            msg = {**msg, "mask": msg["mask"][:, :16]}
        return msg, state

    monkeypatch.setattr(secure, "advertise", advertise)
    out: dict = {}

    def party(name: str) -> None:
        try:
            with cr.init(party=name, addresses=addrs, tls=str(pki), backend="inline",
                         timeout_s=30) as rt:  # fmt: skip
                train(rt, rt.party("server"), [rt.party(p) for p in "abc"], 1,
                      model=models.LogisticRegression(3), client_data=_silo_data,
                      secagg=True, seed=0)  # fmt: skip
            out[name] = "finished"
        except CipherrayError as e:
            out[name] = e

    threads = [threading.Thread(target=party, args=(p,)) for p in parties]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert time.monotonic() - t0 < 20  # nobody waited for the timeout (30 s)
    err = out["server"]
    assert isinstance(err, WireError), out
    assert err.party == "c" and err.step == sm.KEYS_TAG and "mask" in str(err)
    for p in "abc":
        assert isinstance(out[p], PartyError), out
        assert out[p].party == "c" and out[p].step == sm.KEYS_TAG, out


def test_a_place_may_report_only_the_clients_it_hosts():
    from cipherray.workloads.hfl.train import _members

    hosted = [("a", np.array([0], np.int64)), ("b", np.array([1], np.int64))]
    fits = [chunk.ChunkFit(np.array([c], np.int64), None, []).message() for c in (0, 1)]
    np.testing.assert_array_equal(_members(hosted, *fits), [0, 1])
    stolen = chunk.ChunkFit(np.array([0], np.int64), None, []).message()  # b claims a's
    with pytest.raises(WireError, match="does not host") as e:
        _members(hosted, fits[0], stolen)
    assert e.value.party == "b" and e.value.step == "hfl/fit"
