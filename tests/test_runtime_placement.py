"""Placement on a real multi-node Ray cluster built on this machine: one node per party."""

from __future__ import annotations

import pytest
from conftest import party_cluster

import cipherray as cr

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    yield from party_cluster(("bank", "insurer"), resources={"head": 1})


def test_every_actor_of_a_party_runs_on_its_node(cluster):
    c, nodes = cluster
    rt = cr.init({"bank": {"workers": 2}, "insurer": {"workers": 2}}, address=c.address)
    try:
        for party, node in nodes.items():
            places = rt.where(party)
            assert len(places) == 2
            assert {p["node_id"] for p in places} == {node.node_id}, party
        bank, insurer = rt.parties
        mpc = rt.mpc(bank, insurer)
        import numpy as np

        x = bank(lambda: np.array([1.0, 2.0]))().to(mpc)
        y = insurer(lambda: np.array([3.0, 4.0]))().to(mpc)
        np.testing.assert_allclose(rt.get((x + y).sum().reveal_to(bank)), 10.0)
    finally:
        rt.shutdown()


def test_missing_party_resource_names_party_and_ray_start_line(cluster):
    c, _ = cluster
    with pytest.raises(cr.PlacementError) as info:
        cr.init(["bank", "hospital"], address=c.address)
    msg = str(info.value)
    assert "party 'hospital'" in msg
    assert "ray start" in msg and "--resources" in msg and "party:hospital" in msg
    if ray.is_initialized():
        ray.shutdown()
