"""Party-owned values on a real multi-node Ray cluster: the driver holds receipts only.

The cluster runs on this machine (`ray.cluster_utils.Cluster`): a head node where the
driver runs, with no party resource, and one node per party (bank, insurer, dealer).
The workload: HE keygen, encryption at the bank, evaluation at the insurer, decryption
at the bank; secret sharing with dealer triples and a secure multiply; PSI (the job).

Ray is the ground truth. What it says is read with these probes, which read private
Ray APIs on purpose: they are what the state API and `ray memory` are built on, and
the public state API says neither who owns an object nor where it is stored (it also
leaves out objects that only borrowers keep alive, which is what a message is once
its sender's `emit` returned):

- the driver's reference table (core worker `get_all_reference_counts`,
  `get_owner_address`): every object the driver references, and its owner. Each
  object the driver owns is read (it is in the driver's memory anyway) and must be a
  `Receipt` without values, or the list of message refs an `emit` returned; each
  object it only borrows must be owned by a worker off the head node;
- `ray.experimental.get_object_locations`: no object the driver references has a copy
  on the head node;
- the head node's raylet stats (`ray._private.internal_api.node_stats`): its object
  store holds no object at all;
- the state API (`ray.util.state.list_objects` / `list_workers`, served by the
  dashboard on the head node): no process on the head node but the driver holds an
  object reference, and every reference it lists for the driver is in the table above.

The probes run before every `rt.get` the PSI job makes (its intermediate values are
alive then) and once more at the end, with the HE key, the shares and the unread
reveals alive, before the test reads any result. A control run with
`driver_as="bank"` shows that the probes see what they should: the bank's values
that the driver reads sit in driver-owned receipts and in the head node's store.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import party_cluster

import cipherray as cr
from cipherray.runtime.worker import Receipt
from cipherray.workloads.psi.job import PsiConfig
from cipherray.workloads.psi.job import run as run_psi

ray = pytest.importorskip("ray")
from ray._private import internal_api  # noqa: E402
from ray.core.generated import common_pb2  # noqa: E402
from ray.util import state  # noqa: E402

pytestmark = pytest.mark.slow

PARTIES = ("bank", "insurer", "dealer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    # the head has no party resource, so no party worker may run there; its dashboard
    # serves the state API
    yield from party_cluster(PARTIES, include_dashboard=True, dashboard_port=_free_port())


# ------------------------------------------------------------------ probes


@dataclass
class Probe:
    label: str
    owned: list = field(default_factory=list)  # (kind, value) of each driver-owned object
    borrowed_owner_nodes: list = field(default_factory=list)  # owner node of each borrowed ref
    on_head: list = field(default_factory=list)  # refs with a copy on the head node
    unlocated: list = field(default_factory=list)  # refs whose owner gave no location
    head_store: tuple = (0, 0, 0)  # objects, bytes, primary copies in the head's store
    head_pids: set = field(default_factory=set)  # processes on the head node holding refs
    unlisted: set = field(default_factory=set)  # driver refs in the state API, not the table
    state_error: str | None = None  # the state API did not answer (no dashboard)

    def kinds(self) -> Counter:
        return Counter(kind for kind, _ in self.owned)


def _kind(v: Any) -> str:
    if isinstance(v, Receipt):
        return "receipt" if v.values is None else "receipt with values"
    if isinstance(v, list) and v and all(isinstance(x, ray.ObjectRef) for x in v):
        return "message refs"
    return type(v).__name__


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except Exception:
        return a == b


def _show(found: list) -> list:
    """Readable findings: (kind, what it holds)."""
    return [(k, v.values if isinstance(v, Receipt) else v) for k, v in found]


def unexplained(probe: Probe, allowed: list) -> list:
    """Driver-owned objects that may hold a key, seed, share or party plaintext: all
    but receipts without values and message-ref lists, unless every value they hold
    is one of `allowed` (values revealed to a party the driver runs as)."""
    bad = []
    for kind, v in probe.owned:
        if kind in ("receipt", "message refs"):
            continue
        held = v.values if kind == "receipt with values" else (v,)
        if not all(any(_same(h, a) for a in allowed) for h in held):
            bad.append((kind, v))
    return bad


def _table_refs() -> list:
    """ObjectRefs for every entry of the driver's reference table (Ray's own count of
    what this process references: owned objects and borrowed ones)."""
    cw = ray._private.worker.global_worker.core_worker
    refs = []
    for key in cw.get_all_reference_counts():
        hexid = key.decode() if isinstance(key, bytes) else key.hex()  # ObjectID, or its hex
        refs.append(ray.ObjectRef(bytes.fromhex(hexid)))
    return refs


def _owner(ref: Any) -> Any:
    cw = ray._private.worker.global_worker.core_worker
    addr = common_pb2.Address()
    addr.ParseFromString(cw.get_owner_address(ref))
    return addr


def probe(label: str, head: str, state_api: bool = True) -> Probe:
    """What Ray says the driver owns, borrows and stores on the head node now."""
    p = Probe(label)
    me = ray.get_runtime_context().get_worker_id()
    refs = _table_refs()
    for ref in refs:
        owner = _owner(ref)
        if owner.worker_id.hex() == me:
            # reading an emit's list makes the driver borrow the message refs in it:
            # harmless (it never reads them), but they stay listed a little longer
            v = ray.get(ref, timeout=120)
            p.owned.append((_kind(v), v))
        else:
            p.borrowed_owner_nodes.append(owner.node_id.hex())
    # One ref per call: Ray 2.60's GetLocationFromOwner (core_worker.cc) counts its
    # per-owner batches while replies already arrive, so a call spanning several owners
    # can return early with part of the answer and then abort the driver ("Promise
    # already satisfied"); it also reads timeout_ms as microseconds, hence -1.
    for ref in refs:
        loc = ray.experimental.get_object_locations([ref], timeout_ms=-1).get(ref)
        if loc is None:
            p.unlocated.append(ref)
        elif head in (loc.get("node_ids") or []):
            p.on_head.append(ref)
    (node,) = [n for n in ray.nodes() if n["NodeID"] == head and n["Alive"]]
    s = internal_api.node_stats(node["NodeManagerAddress"], node["NodeManagerPort"]).store_stats
    p.head_store = (
        s.num_local_objects,
        s.object_store_bytes_used,
        s.num_object_store_primary_copies,
    )
    if state_api:
        try:
            workers = state.list_workers(detail=True, limit=10_000, raise_on_missing_output=False)
            listed = state.list_objects(detail=True, limit=10_000, raise_on_missing_output=False)
        except Exception as e:  # the dashboard did not start: the other probes still ran
            p.state_error = f"{type(e).__name__}: {e}"
            return p
        node_of = {w.pid: w.node_id for w in workers}
        p.head_pids = {o.pid for o in listed if node_of.get(o.pid) == head}
        known = {r.hex() for r in refs}
        p.unlisted = {
            o.object_id
            for o in listed
            if o.pid == os.getpid() and o.reference_type != "ACTOR_HANDLE"
        } - known
    return p


# ------------------------------------------------------------------ the workload


@pytest.fixture(scope="module")
def workload(cluster, tmp_path_factory):
    """HE, MPC with dealer triples and PSI without driver_as; probes during and after."""
    c, nodes = cluster
    tmp = tmp_path_factory.mktemp("psi")
    ids_bank = [f"c{i:03d}" for i in range(0, 40)]
    ids_ins = [f"c{i:03d}" for i in range(25, 70)]
    pd.DataFrame({"id": ids_bank, "balance": np.arange(40.0)}).to_csv(tmp / "bank.csv", index=False)
    pd.DataFrame({"id": ids_ins, "premium": np.arange(45)}).to_csv(tmp / "insurer.csv", index=False)
    rt = cr.init({p: {"workers": 1} for p in PARTIES}, address=c.address, timeout_s=120)
    head = ray.get_runtime_context().get_node_id()
    out: dict[str, Any] = {"head": head, "nodes": {p: n.node_id for p, n in nodes.items()}}
    probes: list[Probe] = []
    try:
        out["where"] = {p: {w["node_id"] for w in rt.where(p)} for p in PARTIES}
        bank, insurer, _ = rt.parties
        # HE: the bank's key pair, its encrypted vector evaluated at the insurer
        rt.policy.grant(owner="bank", to="insurer", allow="encrypted")
        he = rt.he(keyholder=bank, bits=1024, insecure=True)
        enc = bank(lambda: np.array([1.5, -2.0, 0.25, 4.0, 3.0]))().to(he)
        at_ins = enc.to(insurer)
        w_ins = insurer(lambda: np.arange(10.0).reshape(2, 5) - 3)()
        he_out = he(lambda c, w: w @ c, declare="aggregate", rows=5)(at_ins, w_ins)
        he_dec = he_out.reveal_to(bank)
        # MPC: shares of the bank's and the insurer's vectors, a Beaver multiply with
        # the dealer's triples, a joint aggregate revealed to the bank
        mpc = rt.mpc(bank, insurer, dealer="dealer")
        xs = bank(lambda: np.array([1.0, 2.5, -3.0, 4.0]))().to(mpc)
        ys = insurer(lambda: np.array([2.0, -1.0, 0.5, 3.0]))().to(mpc)
        prod = xs * ys
        dot = prod.sum().reveal_to(bank)
        xw = (xs @ np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])).reveal_to(bank)
        rt.wait(he_dec, dot, xw)
        # PSI (the job): probe before each of its reads, while its values are alive
        real_get = rt.get

        def get_after_probe(ref: Any, timeout: float | None = None) -> Any:
            probes.append(probe(f"psi read {len(probes) + 1}", head, state_api=False))
            return real_get(ref, timeout)

        rt.get = get_after_probe  # the job's reads go through the spy
        try:
            cfg = PsiConfig(
                inputs={"bank": str(tmp / "bank.csv"), "insurer": str(tmp / "insurer.csv")},
                keys=["id"],
                out=str(tmp / "out"),
                progress=False,
            )
            out["psi"] = run_psi(cfg, rt=rt)
        finally:
            del rt.get
        out["psi_dir"] = tmp / "out"
        out["psi_want"] = sorted(set(ids_bank) & set(ids_ins))
        # the final probe: the key pair, shares, ciphertexts, unread reveals all alive
        probes.append(probe("final", head))
        # only now the driver reads: values revealed to the bank
        out["he"] = rt.get(he_dec)
        out["dot"] = rt.get(dot)
        out["xw"] = rt.get(xw)
        out["edges"] = rt.ledger.edges()
        del he, enc, at_ins, w_ins, he_out, he_dec, xs, ys, prod, dot, xw
    finally:
        rt.shutdown()
    out["probes"] = probes
    return out


def test_each_party_runs_on_its_own_node_and_none_on_the_head(workload):
    assert workload["where"] == {p: {workload["nodes"][p]} for p in PARTIES}
    assert workload["head"] not in workload["nodes"].values()


def test_workload_gives_the_plaintext_results(workload):
    x = np.array([1.5, -2.0, 0.25, 4.0, 3.0])
    np.testing.assert_allclose(workload["he"], (np.arange(10.0).reshape(2, 5) - 3) @ x, atol=1e-6)
    a, b = np.array([1.0, 2.5, -3.0, 4.0]), np.array([2.0, -1.0, 0.5, 3.0])
    np.testing.assert_allclose(workload["dot"], a @ b, atol=1e-3)
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])
    np.testing.assert_allclose(workload["xw"], a @ W, atol=1e-3)
    edges = workload["edges"]
    dealt = edges[edges["from"] == "dealer"]
    assert set(dealt["to"]) == {"bank", "insurer"}  # the multiply used the dealer's triples
    psi = workload["psi"]
    assert psi["size"] == len(workload["psi_want"]) == 15
    bank = pd.read_csv(workload["psi_dir"] / "bank.csv", dtype=str)
    ins = pd.read_csv(workload["psi_dir"] / "insurer.csv", dtype=str)
    assert sorted(bank["id"]) == workload["psi_want"]
    assert list(bank["id"]) == list(ins["id"])  # the same row order at both parties


def test_probes_ran_during_psi_and_after_everything(workload):
    labels = [p.label for p in workload["probes"]]
    assert len(labels) >= 5 and labels[-1] == "final"  # the PSI job reads >= 4 times
    # the probes are not blind: they saw the receipts of the live values, and the
    # message-ref lists of values that were sent (the runtime reuses a value's message
    # while the value lives), whose refs the driver only borrows
    final = workload["probes"][-1]
    assert final.kinds()["receipt"] >= 10
    assert sum(p.kinds()["message refs"] for p in workload["probes"]) >= 1
    assert any(p.borrowed_owner_nodes for p in workload["probes"])


def test_driver_owns_no_key_seed_share_or_party_plaintext(workload):
    """Every driver-owned object is a receipt without values or an emit's list of
    message refs: nothing was revealed to a party the driver runs as (it runs as none)."""
    for p in workload["probes"]:
        assert not unexplained(p, allowed=[]), (p.label, _show(unexplained(p, allowed=[])))
        assert set(p.kinds()) <= {"receipt", "message refs"}, (p.label, p.kinds())


def test_messages_are_owned_by_workers_off_the_driver_node(workload):
    for p in workload["probes"]:
        assert workload["head"] not in p.borrowed_owner_nodes, p.label
        assert set(p.borrowed_owner_nodes) <= set(workload["nodes"].values()), p.label


def test_no_object_is_stored_on_the_driver_node(workload):
    for p in workload["probes"]:
        assert p.on_head == [] and p.unlocated == [], p.label
        assert p.head_store == (0, 0, 0), (p.label, p.head_store)


def test_state_api_shows_no_other_process_on_the_driver_node_holding_objects(workload):
    final = workload["probes"][-1]
    if final.state_error:
        pytest.skip(f"the state API did not answer: {final.state_error}")
    assert final.head_pids == {os.getpid()}
    assert final.unlisted == set()  # the driver's references are the probed ones


def test_probes_see_bank_values_when_the_driver_runs_as_bank(cluster):
    """The control: with driver_as="bank" the driver may read the bank's values; they
    then sit in driver-owned receipts (small values) and in the head node's store (a
    large value, while the driver holds it). The probes must see both."""
    c, _ = cluster
    rt = cr.init({p: {"workers": 1} for p in PARTIES}, address=c.address, driver_as="bank")
    try:
        head = ray.get_runtime_context().get_node_id()
        bank = rt.party("bank")
        secret = bank(lambda: np.array([2.5, -7.25, 11.0]))()
        big = bank(lambda: np.arange(200_000.0))()  # over the eager limit: fetched
        small_value = rt.get(secret)
        big_value = rt.get(big)
        p = probe("driver_as=bank", head, state_api=False)
        np.testing.assert_array_equal(small_value, [2.5, -7.25, 11.0])
        flagged = unexplained(p, allowed=[])
        assert any(
            kind == "receipt with values" and any(_same(x, small_value) for x in v.values)
            for kind, v in flagged
        ), p.kinds()
        # the exception the claim makes: values revealed to a party the driver runs as
        assert unexplained(p, allowed=[small_value]) == []
        assert p.head_store[0] >= 1 and p.head_store[1] >= big_value.nbytes, p.head_store
        assert p.head_store[2] == 0  # a copy: the primary stays in the bank's node
        del big_value
    finally:
        rt.shutdown()
