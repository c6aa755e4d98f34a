"""Shared fixtures. Ray runtimes are module-scoped: starting Ray costs seconds."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TQDM_DISABLE", "1")

import cipherray as cr  # noqa: E402

BACKENDS = ["inline", "ray"]


@pytest.fixture(scope="module", params=BACKENDS)
def rt(request):
    """A three-party runtime on each backend (the conformance suite runs on both)."""
    runtime = cr.init(
        {"a": {"workers": 2}, "b": {"workers": 1}, "c": {"workers": 1}},
        backend=request.param,
        timeout_s=60,
        driver_as=["a", "b", "c"],  # the test driver acts for every party: it reads them all
    )
    yield runtime
    runtime.shutdown()


@pytest.fixture
def inline_rt():
    runtime = cr.init(["a", "b", "c"], backend="inline", driver_as=["a", "b", "c"])
    yield runtime
    runtime.shutdown()


def party_cluster(parties, **head_args):
    """A multi-node Ray cluster on this machine: a head node with no party resource
    (where the driver runs) and one node per party offering `party:<name>`. A generator
    for module fixtures: yields (cluster, {party: node}), then shuts everything down."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **head_args})
    nodes = {p: c.add_node(num_cpus=1, resources={f"party:{p}": 2}) for p in parties}
    c.wait_for_nodes()
    yield c, nodes
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()
