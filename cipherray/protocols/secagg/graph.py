"""The communication graph of SecAgg+ and the choice of its degree k and threshold t.

Graph (Bell et al. 2020, "Secure single-server aggregation with (poly)logarithmic
overhead", section 4): a Harary graph H(n, k) -- position i is adjacent to positions
i +- 1, ..., i +- k/2 (mod n), k even -- whose positions are relabelled by a uniformly
random permutation of the clients (from the AES-CTR PRG). Client u shares its secrets
with its k neighbours; the neighbour at offset number j (offsets -k/2..-1, 1..k/2 in
that order) holds the share at point x = j + 1. For a few silos (or whenever the bounds
below need k >= n - 1) the graph is complete: every client is every other's neighbour.

Parameters. The clients are sampled, a fraction gamma of them may be corrupt (and
collude with the server) and a fraction delta may drop out before unmasking (delta is
the total over both stages: with per-stage rates d1, d2, delta = 1 - (1-d1)(1-d2)).
After the random relabelling, the number of corrupt (dropped) neighbours of a client is
close to Binomial(k, gamma) (Binomial(k, delta)); we take Bell et al.'s approach of
union bounds over the n clients and pick the smallest even k with a threshold t such
that

* security:    n * P[Binomial(k, gamma) >= t]    <= 2^-sigma  (no client has t corrupt
  neighbours, so the adversary never holds t shares of an honest client's secrets;
  the semi-honest server asks for only one of a client's two secrets), and
* correctness: n * P[Binomial(k, 1 - delta) < t] <= 2^-eta    (every client keeps at
  least t neighbours that answer at unmasking),

with t the smallest value meeting the security bound (it makes correctness easiest),
and t >= 2. Defaults: sigma = 40 (statistical security), eta = 30 (correctness), and
gamma = 0.05 (the "5% corrupt clients" of Bell et al.'s headline example). Both tails
fall like exp(-c k) for fixed rates, so k grows like O(log n) (with a constant that
grows as 1 - delta approaches gamma). This is a simplification of Bell et al.'s
analysis: it bounds each client's neighbourhood only. Their analysis also requires the
graph of honest surviving clients to stay connected (otherwise the server learns the
sums of the components, not only the full sum); that bound is not computed here.

For the complete graph the counts are not random: the round succeeds exactly when no
more than ``k - t`` clients drop out (``GraphParameters.max_dropouts``).

What each party learns: the graph is public (the server samples it and tells each
client its neighbours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cipherray.protocols import prg

from .errors import ParameterError
from .shamir import MAX_THRESHOLD

DEFAULT_CORRUPTION = 0.05
DEFAULT_SIGMA = 40
DEFAULT_ETA = 30


def binomial_upper_tail(k: int, p: float, t: int) -> float:
    """P[Binomial(k, p) >= t]."""
    if t <= 0:
        return 1.0
    if t > k:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [
        math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1) + i * lp + (k - i) * lq
        for i in range(t, k + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def binomial_lower_tail(k: int, p: float, t: int) -> float:
    """P[Binomial(k, p) < t] = P[Binomial(k, 1 - p) > k - t]."""
    return binomial_upper_tail(k, 1.0 - p, k - t + 1)


@dataclass(frozen=True)
class GraphParameters:
    """Degree, threshold and the bounds they meet (see the module docstring)."""

    n_clients: int
    degree: int
    threshold: int
    complete: bool
    corruption: float
    dropout: float
    security_failure: float  # n * P[Bin(k, gamma) >= t]
    correctness_failure: float  # n * P[Bin(k, 1 - delta) < t]; 0/1 for the complete graph

    @property
    def max_dropouts(self) -> int:
        """Complete graph: the most clients that may drop out with the round succeeding."""
        return self.degree - self.threshold


def security_threshold(n_clients: int, degree: int, corruption: float, sigma: float) -> int:
    """Smallest t >= 2 with n * P[Binomial(k, gamma) >= t] <= 2^-sigma (k + 1 if none)."""
    bound = 2.0**-sigma / n_clients
    for t in range(2, degree + 1):
        if binomial_upper_tail(degree, corruption, t) <= bound:
            return t
    return degree + 1


def choose_parameters(
    n_clients: int,
    dropout: float,
    corruption: float = DEFAULT_CORRUPTION,
    sigma: float = DEFAULT_SIGMA,
    eta: float = DEFAULT_ETA,
) -> GraphParameters:
    """Smallest even degree k and its threshold t meeting both bounds for n clients.

    Falls back to the complete graph (k = n - 1) when no sparse k < n - 1 does; raises
    ``ParameterError`` when not even the complete graph meets the security bound."""
    if n_clients < 3:
        raise ParameterError("secure aggregation needs at least 3 clients")
    if not (0 <= dropout < 1 and 0 <= corruption < 1):
        raise ValueError("dropout and corruption are fractions in [0, 1)")
    n = n_clients
    for k in range(2, min(n - 1, MAX_THRESHOLD + 1), 2):
        t = security_threshold(n, k, corruption, sigma)
        if t > k:
            continue
        fail = n * binomial_lower_tail(k, 1.0 - dropout, t)
        if fail <= 2.0**-eta:
            sec = n * binomial_upper_tail(k, corruption, t)
            return GraphParameters(n, k, t, False, corruption, dropout, sec, fail)
    k = n - 1
    if k > MAX_THRESHOLD:
        raise ParameterError(f"no degree up to {MAX_THRESHOLD} meets the bounds for n={n}")
    t = security_threshold(n, k, corruption, sigma)
    if t > k:
        raise ParameterError(f"even the complete graph on {n} clients misses 2^-{sigma}")
    survivors = math.floor(k * (1.0 - dropout) + 1e-9)
    sec = n * binomial_upper_tail(k, corruption, t)
    return GraphParameters(n, k, t, True, corruption, dropout, sec, float(survivors < t))


def complete_parameters(n_clients: int, threshold: int | None = None) -> GraphParameters:
    """The complete graph for a few silos; default threshold: a majority of the others."""
    if n_clients < 3:
        raise ParameterError("secure aggregation needs at least 3 clients")
    k = n_clients - 1
    t = threshold if threshold is not None else k // 2 + 1
    if not 2 <= t <= k:
        raise ParameterError(f"threshold must lie in [2, {k}]")
    return GraphParameters(n_clients, k, t, True, float("nan"), float("nan"), 0.0, 0.0)


@dataclass(frozen=True)
class CommunicationGraph:
    """``neighbours[u, j]`` is the client holding u's share at point j + 1."""

    neighbours: np.ndarray  # (n, k) int64
    threshold: int

    @property
    def n_clients(self) -> int:
        return self.neighbours.shape[0]

    @property
    def degree(self) -> int:
        return self.neighbours.shape[1]


def random_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of 0..n-1 (sorting 64-bit PRG keys)."""
    return np.argsort(prg.fresh_ring(n), kind="stable")


def harary_graph(n_clients: int, degree: int, threshold: int) -> CommunicationGraph:
    """H(n, k) with a random relabelling; complete when k >= n - 1."""
    n = n_clients
    if degree >= n - 1:
        others = np.arange(n)[None, :].repeat(n, 0)
        mask = ~np.eye(n, dtype=bool)
        return CommunicationGraph(others[mask].reshape(n, n - 1), threshold)
    if degree % 2 or degree < 2:
        raise ValueError("a sparse Harary graph needs an even degree >= 2")
    half = degree // 2
    offsets = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])
    label = random_permutation(n)  # label[position] = client
    position = np.empty(n, dtype=np.int64)
    position[label] = np.arange(n)
    neighbours = label[(position[:, None] + offsets[None, :]) % n]
    return CommunicationGraph(neighbours.astype(np.int64), threshold)


def build_graph(params: GraphParameters) -> CommunicationGraph:
    """The graph that ``params`` describes."""
    return harary_graph(params.n_clients, params.degree, params.threshold)
