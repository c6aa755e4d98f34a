"""SecureBoost: gradient-boosted trees on vertically partitioned data (FATE's
Hetero-SecureBoost with the SecureBoost+ optimisations).

The guest holds the labels and some feature columns; each host holds other columns of
the same aligned rows (row i is the same person everywhere, e.g. after PSI). Only the
guest has a Paillier key; its private key never leaves it.

Steps (the code below is numbered the same way):

1. Binning. Each party bins its own features into at most ``bins`` quantile bins;
   missing values (NaN) go to their own bucket (index ``bins``). The bin edges
   (thresholds) never leave the party. *Nobody learns anything.*
2. Gradients. Per tree the guest computes g, h (binary: g = p - y, h = p(1 - p);
   regression: g = pred - y, h = 1), fixed-point encodes them at 2^-20, shifts g by an
   offset so it is non-negative and packs ``(g + off, h, 1)`` into one plaintext per
   row (GH packing; the trailing 1 counts rows, so the guest can remove the offsets
   from bin sums), encrypts one ciphertext per row and sends them to every host.
   *Hosts learn nothing (semantic security).*
3. Histograms. Per tree level the guest sends the hosts the rows (positions in the
   aligned table) of the *smaller* child of every node split at the previous level (at
   the root: all rows). *Hosts learn the node partition of the rows (standard
   SecureBoost leakage).* Each host computes the encrypted histograms
   ``H[node, feature, bin]`` of those nodes with ``bucket_products``; the guest gets
   the larger sibling by subtracting in plaintext from the parent's (decrypted)
   histogram, so hosts do half the work from level 1 on.
4. Compression. Hosts pack ``k`` bin sums into one ciphertext by Horner's rule
   ``c <- c^(2^w) * c_next`` (w: bits of one packed bin sum, k = (key bits - 3) // w),
   so the guest decrypts k times fewer ciphertexts, and re-randomise every ciphertext
   they send (otherwise the guest could match them against products of its own
   ciphertexts and learn the host's bin orderings). Cumulative sums over bins are done
   by the guest after decryption: in plaintext they cost nothing, while on ciphertexts
   they cost one multiplication mod n^2 per bin and do not reduce what is sent or
   decrypted. *The guest learns, per node, the (g, h, count) sums of each host bin —
   but not the bins' thresholds or which rows are in them.*
5. Split finding. The guest decrypts, unpacks and scores every candidate split of its
   own features and of the hosts' (known to it only as (host, feature id, bin id)):
   gain = G_L^2/(H_L+λ) + G_R^2/(H_R+λ) - G^2/(H+λ), both children with hessian sum
   >= min_child_weight, missing values tried left and right. Ties: first party (guest,
   then hosts in order), feature, bin, missing-right before missing-left. If a host's
   split wins, the guest sends that host (node, feature id, bin id, missing side) and
   the node's rows; the host stores the threshold in its own lookup table and returns
   the left/right bit of each of those rows. *The host learns which of its splits was
   chosen and the resulting partition; the guest never sees the threshold.*
6. Leaves. weight = -lr * G/(H+λ), computed at the guest; the guest updates its
   scores. With ``guest_first_tree=True`` the first tree uses the guest's features
   only (no encryption, no message).
7. Prediction. The trees are traversed level by level for all trees at once: the guest
   evaluates its own splits, and per level sends each host the rows sitting at that
   host's split nodes; the host answers their directions from its lookup table.
   *The host learns which rows reach its split nodes; the guest gets the prediction.*

Message tags: ``secureboost/tree{t}/level{l}/secureboost/<message>`` (the runtime's
policy recognises a declared message as ``<protocol>/<message>``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from cipherray.runtime import Party, PartyRef, Runtime

FRAC_BITS = 20  # fixed-point precision of g and h: 2^-20
SCALE = float(1 << FRAC_BITS)
MIN_GAIN = 1e-6  # a split must improve the objective by more than this (XGBoost's kRtEps)

MESSAGES = {
    "gh": "one Paillier ciphertext per row: the guest's packed gradient and hessian",
    "rows": "row positions of the smaller child of each split node (the node partition)",
    "hist": "re-randomised, compressed encrypted histograms of the host's features",
    "split": "a chosen host split (node, feature id, bin id, missing side) and its rows",
    "directions": "left/right bit of each row of a host-split node",
    "predict": "rows at a host's split nodes during prediction",
    "importance": "split counts and total gains of the host's own features",
}


# --------------------------------------------------------------------------- 1. bins
def fit_bins(x: np.ndarray, bins: int) -> list[np.ndarray]:
    """Quantile bin edges per column (at most bins - 1 distinct edges; NaN ignored)."""
    edges = []
    qs = np.arange(1, bins) / bins
    for j in range(x.shape[1]):
        v = x[:, j]
        v = v[~np.isnan(v)]
        edges.append(np.unique(np.quantile(v, qs)) if v.size else np.zeros(0))
    return edges


def apply_bins(x: np.ndarray, edges: list[np.ndarray], bins: int) -> np.ndarray:
    """(d, n) bucket ids: bin(x) = #edges < x, so bin <= b  <=>  x <= edges[b];
    NaN -> bucket ``bins``."""
    out = np.empty((x.shape[1], x.shape[0]), dtype=np.int32)
    for j, e in enumerate(edges):
        col = x[:, j]
        b = np.searchsorted(e, col, side="left").astype(np.int32)
        b[np.isnan(col)] = bins
        out[j] = b
    return out


def _threshold(edges: np.ndarray, b: int) -> float:
    return float(edges[b]) if b < edges.size else math.inf


def _check_x(x: Any, who: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{who}: features must be a 2-d array, got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(f"{who}: features contain infinity (use NaN for missing values)")
    return x


def _check_y(y: Any, n: int, objective: str, who: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size != n:
        raise ValueError(f"{who}: {y.size} labels for {n} rows")
    if not np.isfinite(y).all():
        raise ValueError(f"{who}: labels contain NaN or infinity")
    if objective == "binary" and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{who}: labels must be 0 or 1 for objective='binary'")
    return y


# ------------------------------------------------------------------ 2. gradients
def grad_hess(y: np.ndarray, margin: np.ndarray, objective: str) -> tuple[np.ndarray, ...]:
    """Fixed-point (2^-20) gradients and hessians as int64."""
    if objective == "binary":
        p = 1.0 / (1.0 + np.exp(-margin))
        g, h = p - y, p * (1.0 - p)
    else:
        g, h = margin - y, np.ones_like(margin)
    return np.rint(g * SCALE).astype(np.int64), np.rint(h * SCALE).astype(np.int64)


@dataclass(frozen=True)
class GHLayout:
    """One packed value: ``(g + off) << (hbits + cbits) | h << cbits | count``; any sum
    of at most n rows fits each field (asserted), so fields never carry."""

    off: int
    gbits: int
    hbits: int
    cbits: int
    per_ct: int  # packed bin sums per compressed ciphertext

    @property
    def width(self) -> int:
        return self.gbits + self.hbits + self.cbits

    def to_message(self) -> tuple[int, ...]:
        """The layout as a message: five ints (a cross-silo message carries plain data)."""
        return (self.off, self.gbits, self.hbits, self.cbits, self.per_ct)

    @classmethod
    def from_message(cls, v: Any) -> GHLayout:
        """The layout of a gh message, checked (five non-negative ints, fields of at
        most 62 bits, at least one packed sum per ciphertext)."""
        if not (
            type(v) is tuple and len(v) == 5 and all(type(x) is int and x >= 0 for x in v)
            and max(v[1:4]) <= 62 and min(v[1:4]) >= 1 and v[4] >= 1
            and v[0] < 1 << 62
        ):  # fmt: skip
            raise ValueError(f"a malformed gradient/hessian layout: {v!r}"[:200])
        return cls(*v)


def gh_layout(gi: np.ndarray, hi: np.ndarray, key_bits: int) -> GHLayout:
    n = max(int(gi.size), 1)
    off = max(0, -int(gi.min())) if gi.size else 0
    gmax = (int(gi.max()) if gi.size else 0) + off
    hmax = int(hi.max()) if hi.size else 0
    gbits = max(1, (n * gmax).bit_length())
    hbits = max(1, (n * hmax).bit_length())
    cbits = n.bit_length()
    capacity = key_bits - 3  # packed plaintexts stay below 2^(bits-3) < n/3 = max_int
    width = gbits + hbits + cbits
    assert max(gbits, hbits, cbits) <= 62, "a field of a packed bin sum exceeds int64"
    assert n * gmax < 1 << gbits and n * hmax < 1 << hbits and n < 1 << cbits
    assert width <= capacity, f"packed bin sums of {width} bits exceed {capacity} bits"
    return GHLayout(off, gbits, hbits, cbits, capacity // width)


def pack_gh(gi: np.ndarray, hi: np.ndarray, lay: GHLayout) -> np.ndarray:
    """Object array of packed plaintexts, one per row (vectorised over object ints)."""
    g = (gi + lay.off).astype(object)
    h = hi.astype(object)
    return (g << (lay.hbits + lay.cbits)) | (h << lay.cbits) | 1


# ----------------------------------------------------------------- 3. histograms
def plain_histograms(
    bins_: np.ndarray, gi: np.ndarray, hi: np.ndarray, rows: np.ndarray, slots: np.ndarray,
    nslots: int, nbuckets: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(nslots, d, nbuckets) int64 sums of g and h over the taken rows."""
    d = bins_.shape[0]
    G = np.zeros(nslots * d * nbuckets, dtype=np.int64)
    H = np.zeros_like(G)
    if rows.size and d:
        idx = (slots[:, None] * d + np.arange(d)[None, :]) * nbuckets + bins_[:, rows].T
        np.add.at(G, idx.ravel(), np.repeat(gi[rows], d))
        np.add.at(H, idx.ravel(), np.repeat(hi[rows], d))
    return G.reshape(nslots, d, nbuckets), H.reshape(nslots, d, nbuckets)


def compress(hist: Any, lay: GHLayout, rerandomize: bool = True) -> Any:
    """4. k packed bin sums per ciphertext by Horner's rule (c <- c^(2^w) * c_next),
    then fresh randomness on every ciphertext. Returns a 1-d CipherArray."""
    from cipherray.protocols.paillier.histogram import horner_pack

    acc = horner_pack(hist, lay.per_ct, lay.width)
    return acc.rerandomize() if rerandomize else acc


def decompress(values: np.ndarray, total: int, lay: GHLayout) -> tuple[np.ndarray, ...]:
    """Decrypted compressed plaintexts -> (G, H, C) int64 arrays of ``total`` bin sums."""
    v = np.asarray(values, dtype=object).ravel()
    k, w = lay.per_ct, lay.width
    parts = [(v >> (w * (k - 1 - j))) & ((1 << w) - 1) for j in range(k)]
    packed = np.stack(parts, axis=1).ravel()[:total] if v.size else np.zeros(0, dtype=object)
    c = (packed & ((1 << lay.cbits) - 1)).astype(np.int64)
    h = ((packed >> lay.cbits) & ((1 << lay.hbits) - 1)).astype(np.int64)
    g = (packed >> (lay.hbits + lay.cbits)).astype(np.int64) - c * lay.off
    return g, h, c


# ------------------------------------------------------------- 5. split finding
def best_splits(
    G: np.ndarray, H: np.ndarray, Gt: np.ndarray, Ht: np.ndarray, lam: float, mcw: float
) -> tuple[np.ndarray, ...]:
    """Best split per node of one party's block: (gain, feature, bin, missing_left).
    G, H: (m, d, bins + 1) int64 with the missing bucket last; Gt, Ht: (m,) node totals."""
    m, d, nb = G.shape
    if d == 0 or m == 0:
        z = np.zeros(m, dtype=np.int64)
        return np.full(m, -np.inf), z, z, z.astype(bool)
    cg = np.cumsum(G[:, :, :-1], axis=2)
    ch = np.cumsum(H[:, :, :-1], axis=2)
    gl = np.stack([cg, cg + G[:, :, -1:]], axis=3) / SCALE  # [..., 0] missing right
    hl = np.stack([ch, ch + H[:, :, -1:]], axis=3) / SCALE
    gt = (Gt / SCALE)[:, None, None, None]
    ht = (Ht / SCALE)[:, None, None, None]
    gr, hr = gt - gl, ht - hl
    gain = gl**2 / (hl + lam) + gr**2 / (hr + lam) - gt**2 / (ht + lam)
    gain = np.where((hl >= mcw) & (hr >= mcw), gain, -np.inf).reshape(m, -1)
    best = np.argmax(gain, axis=1)
    f, rest = np.divmod(best, (nb - 1) * 2)
    b, ml = np.divmod(rest, 2)
    return gain[np.arange(m), best], f, b, ml.astype(bool)


# ------------------------------------------------------------- tree building
def _new_tree_state(gi: np.ndarray, hi: np.ndarray, nhosts: int) -> dict:
    n = gi.size
    return {
        "gi": gi, "hi": hi, "node": np.zeros(n, dtype=np.int64), "active": [0],
        "computed": [0], "pairs": [], "host_hist": [None] * nhosts, "pending": {},
        "owner": [-1], "feature": [-1], "bin": [-1], "missing_left": [False], "left": [-1],
        "right": [-1], "value": [0.0], "gain": [0.0], "threshold": [math.nan],
    }  # fmt: skip


def rows_message(ts: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """3. Rows of the nodes whose host histograms are computed this level, and their
    slots (position in ``ts['computed']``)."""
    comp = np.asarray(ts["computed"], dtype=np.int64)
    if comp.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), 0
    lookup = np.full(len(ts["owner"]), -1, dtype=np.int64)
    lookup[comp] = np.arange(comp.size)
    slot = lookup[ts["node"]]
    rows = np.flatnonzero(slot >= 0)
    return rows, slot[rows].astype(np.int32), int(comp.size)


def _level_hists(ts: dict, k: int, computed: tuple[np.ndarray, np.ndarray]) -> tuple:
    """Host k's (G, H) of every active node: the computed (smaller) children as given,
    the larger ones by subtraction from the parent's histogram."""
    cg, chh = computed
    act = ts["active"]
    pos = {nid: i for i, nid in enumerate(ts["computed"])}
    if not act:
        return cg[:0], chh[:0]
    G = np.empty((len(act),) + cg.shape[1:], dtype=np.int64)
    H = np.empty_like(G)
    parents = ts["host_hist"][k]
    for i, nid in enumerate(act):
        if nid in pos:
            G[i], H[i] = cg[pos[nid]], chh[pos[nid]]
    for parent_i, small, large in ts["pairs"]:
        ia, is_ = act.index(large), pos[small]
        G[ia] = parents[0][parent_i] - cg[is_]
        H[ia] = parents[1][parent_i] - chh[is_]
    return G, H


def decide(
    ts: dict, gbins: np.ndarray, gedges: list, host_hists: list, tree: int, level: int,
    p: dict,
) -> tuple[dict, list]:  # fmt: skip
    """5.-6. Best split per active node over all parties; leaves get their weights.
    host_hists[k]: (G, H) of host k's computed slots. Returns the new tree state and,
    per host, the split requests (node ids, feature, bin, missing_left, rows, slots)."""
    ts = dict(ts)
    act = ts["active"]
    gi, hi, node = ts["gi"], ts["hi"], ts["node"]
    m = len(act)
    slot_of = np.full(len(ts["owner"]), -1, dtype=np.int64)
    slot_of[np.asarray(act, dtype=np.int64)] = np.arange(m)
    slot = slot_of[node]
    rows = np.flatnonzero(slot >= 0)
    Gt = np.zeros(m, dtype=np.int64)
    Ht = np.zeros(m, dtype=np.int64)
    np.add.at(Gt, slot[rows], gi[rows])
    np.add.at(Ht, slot[rows], hi[rows])
    nb = p["bins"] + 1
    blocks = [plain_histograms(gbins, gi, hi, rows, slot[rows], m, nb)]
    full = [_level_hists(ts, k, hh) for k, hh in enumerate(host_hists)]
    blocks += full
    best_gain = np.full(m, -np.inf)
    best = np.zeros((m, 4), dtype=np.int64)  # party, feature, bin, missing_left
    can_split = level < p["depth"]
    for party, (G, H) in enumerate(blocks):
        gain, f, b, ml = best_splits(G, H, Gt, Ht, p["lam"], p["mcw"])
        better = gain > best_gain
        best_gain = np.where(better, gain, best_gain)
        best[better] = np.stack([np.full(m, party), f, b, ml], axis=1)[better]
    keys = ("owner", "feature", "bin", "missing_left", "left", "right", "value", "gain")
    for key in (*keys, "threshold"):
        ts[key] = list(ts[key])
    split_nodes, requests = [], [[] for _ in host_hists]
    for i, nid in enumerate(act):
        if can_split and best_gain[i] > MIN_GAIN:
            party, f, b, ml = (int(v) for v in best[i])
            ts["owner"][nid], ts["feature"][nid], ts["bin"][nid] = party, f, b
            ts["missing_left"][nid], ts["gain"][nid] = bool(ml), float(best_gain[i])
            for side in ("left", "right"):
                ts[side][nid] = len(ts["owner"])
                for key, v in zip(keys, (-1, -1, -1, False, -1, -1, 0.0, 0.0)):
                    ts[key].append(v)
                ts["threshold"].append(math.nan)
            if party == 0:
                ts["threshold"][nid] = _threshold(gedges[f], b)
            else:
                requests[party - 1].append((nid, f, b, bool(ml)))
            split_nodes.append((i, nid))
        else:
            ts["owner"][nid] = -1
            ts["value"][nid] = -p["lr"] * (Gt[i] / SCALE) / (Ht[i] / SCALE + p["lam"])
    # guest splits: directions computed here; host splits: requests with their rows
    go_left = np.zeros(node.size, dtype=bool)
    for i, nid in split_nodes:
        if ts["owner"][nid] == 0:
            r = rows[slot[rows] == i]
            bb = gbins[ts["feature"][nid], r]
            ml = ts["missing_left"][nid]
            go_left[r] = np.where(bb == p["bins"], ml, bb <= ts["bin"][nid])
    out_requests = []
    for reqs in requests:
        ids = np.array([q[0] for q in reqs], dtype=np.int64)
        r = np.flatnonzero(np.isin(node, ids))
        lk = np.full(len(ts["owner"]), -1, dtype=np.int64)
        lk[ids] = np.arange(ids.size)
        out_requests.append(
            {
                "tree": tree,
                "nodes": ids,
                "feature": np.array([q[1] for q in reqs], dtype=np.int64),
                "bin": np.array([q[2] for q in reqs], dtype=np.int64),
                "missing_left": np.array([q[3] for q in reqs], dtype=bool),
                "rows": r,
                "slots": lk[node[r]],
            }
        )
    ts["go_left"] = go_left
    ts["split_nodes"] = split_nodes
    ts["level_G"] = [b[0] for b in full]  # host histograms of the active nodes
    ts["level_H"] = [b[1] for b in full]
    return ts, out_requests


def host_directions(hbins: np.ndarray, hedges: list, lookup: dict, req: dict, bins: int):
    """5. (host) Left bit of each requested row; the thresholds go into the host's
    lookup table (returned), keyed by (tree, node)."""
    lookup = dict(lookup)
    for nid, f, b, ml in zip(req["nodes"], req["feature"], req["bin"], req["missing_left"]):
        lookup[(req["tree"], int(nid))] = (int(f), _threshold(hedges[int(f)], int(b)), bool(ml))
    r, s = req["rows"], req["slots"]
    if r.size == 0:
        return lookup, np.zeros(0, dtype=bool)
    bb = hbins[req["feature"][s], r]
    return lookup, np.where(bb == bins, req["missing_left"][s], bb <= req["bin"][s])


def apply_directions(ts: dict, dirs: list, requests_rows: list) -> dict:
    """Move rows to the children; set up the next level (smaller children computed)."""
    ts = dict(ts)
    go_left = ts.pop("go_left").copy()
    for r, d in zip(requests_rows, dirs):
        go_left[r] = d
    node = ts["node"].copy()
    split_nodes = ts.pop("split_nodes")
    level_G, level_H = ts.pop("level_G"), ts.pop("level_H")
    active, computed, pairs = [], [], []
    for _, nid in split_nodes:
        r = np.flatnonzero(ts["node"] == nid)
        lft, rgt = ts["left"][nid], ts["right"][nid]
        node[r] = np.where(go_left[r], lft, rgt)
        nl = int(go_left[r].sum())
        small, large = (lft, rgt) if nl <= r.size - nl else (rgt, lft)
        active += [lft, rgt]
        computed.append(small)
        pairs.append((len(pairs), small, large))
    # parent histograms (indexed like pairs) for the subtraction at the next level
    idx = [i for i, _ in split_nodes]
    ts["host_hist"] = [(G[idx], H[idx]) for G, H in zip(level_G, level_H)]
    ts.update(node=node, active=active, computed=computed, pairs=pairs)
    return ts


def finish_tree(ts: dict, p: dict) -> tuple[dict, np.ndarray]:
    """6. Remaining active nodes become leaves; returns the tree and the score update."""
    ts = dict(ts)
    gi, hi, node = ts["gi"], ts["hi"], ts["node"]
    ts["value"] = list(ts["value"])
    for nid in ts["active"]:
        r = node == nid
        G, H = gi[r].sum() / SCALE, hi[r].sum() / SCALE
        ts["value"][nid] = -p["lr"] * G / (H + p["lam"])
    keys = ("owner", "feature", "bin", "left", "right")
    tree = {k: np.asarray(ts[k], dtype=np.int64) for k in keys}
    tree["missing_left"] = np.asarray(ts["missing_left"], dtype=bool)
    tree["value"] = np.asarray(ts["value"], dtype=np.float64)
    tree["gain"] = np.asarray(ts["gain"], dtype=np.float64)
    tree["threshold"] = np.asarray(ts["threshold"], dtype=np.float64)
    return tree, tree["value"][node]


def _go_left(x: np.ndarray, thr: np.ndarray, ml: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), ml, x <= thr)


# ------------------------------------------------------------------ plaintext
@dataclass
class PlainModel:
    """train_plaintext's result: trees (dicts of arrays, as the guest holds them),
    the parties' bin edges and the hosts' lookup tables."""

    trees: list[dict]
    objective: str
    guest_edges: list
    host_lookups: list[dict]
    depth: int

    def predict(self, x_guest: Any, x_hosts: list[Any]) -> np.ndarray:
        xg = np.asarray(x_guest, dtype=np.float64)
        xh = [np.asarray(x, dtype=np.float64) for x in x_hosts]
        margin = np.zeros(xg.shape[0])
        for t, tree in enumerate(self.trees):
            node = np.zeros(xg.shape[0], dtype=np.int64)
            for _ in range(self.depth):
                own = tree["owner"][node]
                left = np.zeros(node.size, dtype=bool)
                g = own == 0
                if g.any():
                    f = tree["feature"][node[g]]
                    left[g] = _go_left(
                        xg[np.flatnonzero(g), f], tree["threshold"][node[g]],
                        tree["missing_left"][node[g]],
                    )  # fmt: skip
                for k, x in enumerate(xh):
                    s = np.flatnonzero(own == k + 1)
                    if s.size:
                        left[s] = _host_predict(self.host_lookups[k], t, node[s], x, s)
                split = own >= 0
                node = np.where(
                    split, np.where(left, tree["left"][node], tree["right"][node]), node
                )
            margin += tree["value"][node]
        return _link(margin, self.objective)


def _host_predict(lookup: dict, tree: Any, nodes: np.ndarray, x: np.ndarray, rows: np.ndarray):
    trees = np.broadcast_to(np.asarray(tree), nodes.shape)
    keys = list(zip(trees.tolist(), nodes.tolist()))
    uniq = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    table = [lookup[k] for k in uniq]
    idx = np.fromiter((uniq[k] for k in keys), dtype=np.int64, count=len(keys))
    f = np.array([e[0] for e in table], dtype=np.int64)[idx]
    thr = np.array([e[1] for e in table], dtype=np.float64)[idx]
    ml = np.array([e[2] for e in table], dtype=bool)[idx]
    return _go_left(x[rows, f], thr, ml)


def _link(margin: np.ndarray, objective: str) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margin)) if objective == "binary" else margin


def _params(trees, depth, lr, lam, min_child_weight, bins, objective) -> dict:
    if objective not in ("binary", "regression"):
        raise ValueError(f"objective must be 'binary' or 'regression', got {objective!r}")
    if int(bins) < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if int(depth) < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if int(trees) < 1:
        raise ValueError(f"trees must be >= 1, got {trees}")
    if lam < 0 or min_child_weight < 0 or lr <= 0:
        raise ValueError("lam and min_child_weight must be >= 0 and lr > 0")
    return {
        "trees": int(trees), "depth": int(depth), "lr": float(lr), "lam": float(lam),
        "mcw": float(min_child_weight), "bins": int(bins), "objective": objective,
    }  # fmt: skip


def train_plaintext(
    x_guest: Any, y: Any, x_hosts: list[Any], *, trees: int = 10, depth: int = 5,
    lr: float = 0.3, lam: float = 1.0, min_child_weight: float = 1.0, bins: int = 32,
    objective: str = "binary", guest_first_tree: bool = False, **_: Any,
) -> PlainModel:  # fmt: skip
    """The same algorithm in numpy (same binning, fixed point, split rule, ties), in one
    process: the reference the federated model must equal."""
    p = _params(trees, depth, lr, lam, min_child_weight, bins, objective)
    xg = _check_x(x_guest, "guest")
    xh = [_check_x(x, f"host {k}") for k, x in enumerate(x_hosts)]
    for k, x in enumerate(xh):
        if x.shape[0] != xg.shape[0]:
            raise ValueError(f"host {k} has {x.shape[0]} rows, the guest {xg.shape[0]}")
    yv = _check_y(y, xg.shape[0], objective, "guest")
    gedges = fit_bins(xg, p["bins"])
    gbins = apply_bins(xg, gedges, p["bins"])
    hedges = [fit_bins(x, p["bins"]) for x in xh]
    hbins = [apply_bins(x, e, p["bins"]) for x, e in zip(xh, hedges)]
    lookups: list[dict] = [{} for _ in xh]
    margin = np.zeros(xg.shape[0])
    out = []
    for t in range(p["trees"]):
        use = [] if (guest_first_tree and t == 0) else list(range(len(xh)))
        gi, hi = grad_hess(yv, margin, objective)
        ts = _new_tree_state(gi, hi, len(use))
        for level in range(p["depth"]):
            rows, slots, ns = rows_message(ts)
            hh = [plain_histograms(hbins[k], gi, hi, rows, slots, ns, p["bins"] + 1) for k in use]
            ts, reqs = decide(ts, gbins, gedges, hh, t, level, p)
            dirs = []
            for k, req in zip(use, reqs):
                lookups[k], d = host_directions(hbins[k], hedges[k], lookups[k], req, p["bins"])
                dirs.append(d)
            ts = apply_directions(ts, dirs, [q["rows"] for q in reqs])
        tree, delta = finish_tree(ts, p)
        tree["owner"] = _map_owner(tree["owner"], use)
        out.append(tree)
        margin = margin + delta
    return PlainModel(out, objective, gedges, lookups, p["depth"])


def _map_owner(owner: np.ndarray, use: list[int]) -> np.ndarray:
    """Block index (0 guest, i >= 1 the i-th host used) -> 0 guest / k + 1 host k."""
    owner = owner.copy()
    m = owner >= 1
    owner[m] = np.asarray(use, dtype=np.int64)[owner[m] - 1] + 1
    return owner


# ------------------------------------------------------------ party steps
def _g_setup(x: Any, y: Any, objective: str, bins: int) -> tuple:
    x = _check_x(x, "guest")
    yv = _check_y(y, x.shape[0], objective, "guest")
    edges = fit_bins(x, bins)
    return {"bins": apply_bins(x, edges, bins), "edges": edges, "y": yv}, x.shape[0]


def _h_setup(x: Any, bins: int) -> tuple:
    x = _check_x(x, "host")
    edges = fit_bins(x, bins)
    return {"bins": apply_bins(x, edges, bins), "edges": edges, "lookup": {}}, x.shape[0]


def _g_keygen(bits: int, insecure: bool) -> tuple:
    from cipherray.protocols.paillier import keygen

    return keygen(bits, insecure=insecure)


def _g_tree_start(g: dict, margin: np.ndarray, pk: Any, nhosts: int, objective: str) -> tuple:
    """2. gradients, GH packing, one ciphertext per row; the root's rows message."""
    gi, hi = grad_hess(g["y"], margin, objective)
    ts = _new_tree_state(gi, hi, nhosts)
    enc = None
    if nhosts:
        lay = gh_layout(gi, hi, int(pk.n.bit_length()))
        enc = (pk.encrypt(pack_gh(gi, hi, lay)), lay.to_message())
    return ts, enc, rows_message(ts)


def _h_histograms(h: dict, enc: tuple, rows_msg: tuple, bins: int) -> tuple:
    """3.-4. (host) encrypted histograms of the requested nodes, compressed and
    re-randomised."""
    from cipherray.protocols.paillier.histogram import bucket_products

    c, lay = enc[0], GHLayout.from_message(enc[1])
    rows, slots, ns = rows_msg
    d = h["bins"].shape[0]
    if ns == 0 or d == 0:
        return None, (ns, d, bins + 1)
    hist = bucket_products(c, h["bins"], bins + 1, rows=rows, slots=slots, nslots=ns)
    return compress(hist, lay), (ns, d, bins + 1)


def _g_decide(ts: dict, g: dict, sk: Any, enc: Any, tree: int, level: int, p: dict, *hists):
    """5.-6. (guest) decrypt, unpack, find splits; one request per host."""
    lay = GHLayout.from_message(enc[1]) if enc is not None else None
    host_hists = []
    for ct, shape in hists:
        total = int(np.prod(shape))
        if ct is None:
            z = np.zeros(shape, dtype=np.int64)
            host_hists.append((z, z))
            continue
        G, H, _ = decompress(sk.decrypt(ct), total, lay)
        host_hists.append((G.reshape(shape), H.reshape(shape)))
    ts, reqs = decide(ts, g["bins"], g["edges"], host_hists, tree, level, p)
    return (ts, *reqs) if reqs else ts


def _h_split(h: dict, req: dict, bins: int) -> tuple:
    lookup, d = host_directions(h["bins"], h["edges"], h["lookup"], req, bins)
    return {**h, "lookup": lookup}, d


def _g_apply(ts: dict, *args: Any) -> tuple:
    k = len(args) // 2
    reqs, dirs = args[:k], args[k:]
    ts = apply_directions(ts, list(dirs), [q["rows"] for q in reqs])
    return ts, rows_message(ts)


def _g_finish(ts: dict, margin: np.ndarray, p: dict, use: list[int]) -> tuple:
    tree, delta = finish_tree(ts, p)
    tree["owner"] = _map_owner(tree["owner"], use)
    return tree, margin + delta


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n)


def _pred_start(trees: list, x: Any) -> dict:
    x = _check_x(x, "guest")
    return {"x": x, "node": np.zeros((len(trees), x.shape[0]), dtype=np.int64)}


def _pred_requests(st: dict, nhosts: int, *trees: dict) -> tuple:
    """7. (guest) per host: (tree, node, row) of every row sitting at that host's split."""
    own = np.stack([t["owner"][st["node"][i]] for i, t in enumerate(trees)])
    out = []
    for k in range(nhosts):
        ti, r = np.nonzero(own == k + 1)
        out.append((ti, st["node"][ti, r], r))
    return tuple(out) if nhosts != 1 else out[0]


def _h_pred(h: dict, x: Any, req: tuple) -> np.ndarray:
    ti, nodes, rows = req
    x = _check_x(x, "host")
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    return _host_predict(h["lookup"], ti, nodes, x, rows)


def _pred_advance(st: dict, *args: Any) -> dict:
    """7. (guest) one level down every tree: own splits here, host splits from `dirs`."""
    ntrees = len(st["node"])
    trees, rest = args[:ntrees], args[ntrees:]
    k = len(rest) // 2
    reqs, dirs = rest[:k], rest[k:]
    x, node = st["x"], st["node"].copy()
    left = np.zeros(node.shape, dtype=bool)
    for i, t in enumerate(trees):
        g = np.flatnonzero(t["owner"][node[i]] == 0)
        nd = node[i, g]
        left[i, g] = _go_left(x[g, t["feature"][nd]], t["threshold"][nd], t["missing_left"][nd])
    for (ti, _, r), d in zip(reqs, dirs):
        left[ti, r] = d
    for i, t in enumerate(trees):
        nd = node[i]
        node[i] = np.where(
            t["owner"][nd] >= 0, np.where(left[i], t["left"][nd], t["right"][nd]), nd
        )
    return {"x": x, "node": node}


def _pred_out(st: dict, objective: str, *trees: dict) -> np.ndarray:
    margin = np.zeros(st["node"].shape[1])
    for i, t in enumerate(trees):
        margin += t["value"][st["node"][i]]
    return _link(margin, objective)


def _importance(nfeatures: int, party: int, *trees: dict) -> Any:
    import pandas as pd

    count = np.zeros(nfeatures, dtype=np.int64)
    gain = np.zeros(nfeatures)
    for t in trees:
        m = t["owner"] == party
        np.add.at(count, t["feature"][m], 1)
        np.add.at(gain, t["feature"][m], t["gain"][m])
    return pd.DataFrame({"feature": np.arange(nfeatures), "splits": count, "gain": gain})


def _nfeatures(s: dict) -> int:
    return int(s["bins"].shape[0])


# ------------------------------------------------------------------ the model
class SecureBoostModel:
    """The trained model, split across parties: trees (structure, leaf weights, the
    guest's thresholds) at the guest, each host's thresholds in its lookup table."""

    def __init__(
        self, rt: Runtime, guest: Party, hosts: list[Party], p: dict, gstate: PartyRef,
        hstates: list[PartyRef],
    ) -> None:  # fmt: skip
        self.rt, self.guest, self.hosts, self.params = rt, guest, list(hosts), p
        self._gstate, self._hstates = gstate, list(hstates)
        self.trees: list[PartyRef] = []  # at the guest
        self.seconds_per_tree: list[float] = []
        self.bytes_sent = 0

    def predict(self, rt: Runtime, x_guest: PartyRef, x_hosts: list[PartyRef]) -> PartyRef:
        """7. Collaborative prediction; the result (probability or value) is at the guest."""
        guest, hosts = self.guest, self.hosts
        if len(x_hosts) != len(hosts):
            raise ValueError(f"{len(hosts)} hosts, {len(x_hosts)} host feature tables")
        st = guest(_pred_start, name="secureboost/predict_start")(self.trees, x_guest)
        with rt.scope("secureboost"), rt.scope("predict"):
            for level in range(self.params["depth"]):
                with rt.scope(f"level{level}"):
                    reqs = guest(_pred_requests, num_returns=max(1, len(hosts)))(
                        st, len(hosts), *self.trees
                    )
                    reqs = reqs if len(hosts) != 1 else (reqs,)
                    dirs = []
                    for h, hs, x, q in zip(hosts, self._hstates, x_hosts, reqs):
                        at_h = rt.send(q, to=h, tag="secureboost/predict")
                        d = h(_h_pred, name="secureboost/host_predict")(hs, x, at_h)
                        dirs.append(rt.send(d, to=guest, tag="secureboost/directions"))
                    st = guest(_pred_advance, name="secureboost/predict_level")(
                        st, *self.trees, *reqs, *dirs
                    )
        return guest(_pred_out, name="secureboost/predict_out")(
            st, self.params["objective"], *self.trees
        )

    def importance_at(self, party: Party | str) -> PartyRef:
        """Split count and total gain of `party`'s own features (a DataFrame held at
        that party)."""
        rt, guest = self.rt, self.guest
        name = getattr(party, "name", party)
        if name == guest.name:
            return guest(_importance_g, name="secureboost/importance")(self._gstate, *self.trees)
        names = [h.name for h in self.hosts]
        if name not in names:
            raise ValueError(f"'{name}' is not a party of this model")
        k = names.index(name)
        imp = guest(_importance_host, name="secureboost/importance")(k + 1, *self.trees)
        with rt.scope("secureboost"):
            at_h = rt.send(imp, to=self.hosts[k], tag="secureboost/importance")
        return self.hosts[k](_importance_fill, name="secureboost/importance")(
            self._hstates[k], at_h
        )


def _importance_g(g: dict, *trees: dict) -> Any:
    return _importance(_nfeatures(g), 0, *trees)


def _importance_host(party: int, *trees: dict) -> dict:
    """(guest) per host feature id used: split count and gain (no thresholds)."""
    feats, counts, gains = [], [], []
    for t in trees:
        m = t["owner"] == party
        feats += t["feature"][m].tolist()
        gains += t["gain"][m].tolist()
    counts = [1] * len(feats)
    return {"feature": np.array(feats, np.int64), "count": np.array(counts, np.int64),
            "gain": np.array(gains)}  # fmt: skip


def _importance_fill(h: dict, imp: dict) -> Any:
    import pandas as pd

    nf = _nfeatures(h)
    count = np.zeros(nf, dtype=np.int64)
    gain = np.zeros(nf)
    np.add.at(count, imp["feature"], imp["count"])
    np.add.at(gain, imp["feature"], imp["gain"])
    return pd.DataFrame({"feature": np.arange(nf), "splits": count, "gain": gain})


# ------------------------------------------------------------------ training
def train(
    rt: Runtime, guest: Party, hosts: list[Party], x_guest: PartyRef, y: PartyRef,
    x_hosts: list[PartyRef], *,
    trees: int = 10, depth: int = 5, lr: float = 0.3, lam: float = 1.0,
    min_child_weight: float = 1.0, bins: int = 32, objective: str = "binary",
    guest_first_tree: bool = False, key_bits: int = 2048, insecure: bool = False,
    progress: bool | Callable = False,
) -> SecureBoostModel:  # fmt: skip
    """Train SecureBoost (module docstring: steps 1-6). x_guest, y: PartyRefs at the
    guest; x_hosts[k]: a PartyRef at hosts[k]. `progress`: True for a bar, or a
    callable ``progress(tree_index, trees, seconds)`` called after each tree."""
    p = _params(trees, depth, lr, lam, min_child_weight, bins, objective)
    if len(x_hosts) != len(hosts) or not hosts:
        raise ValueError(f"need one feature table per host: {len(hosts)} hosts, {len(x_hosts)}")
    rt.protocol("secureboost", MESSAGES)
    bytes0 = rt.ledger.total_bytes
    # 1. binning at each party; row counts are public metadata
    g, ng = guest(_g_setup, num_returns=2, name="secureboost/bin")(x_guest, y, objective, bins)
    hs, nh = [], []
    for h, x in zip(hosts, x_hosts):
        s, n = h(_h_setup, num_returns=2, name="secureboost/bin")(x, bins)
        hs.append(s)
        nh.append(n)
    counts = _public_counts(rt, guest, ng, hosts, nh)
    for h, n in zip(hosts, counts[1:]):
        if n != counts[0]:
            raise ValueError(
                f"row counts differ: guest '{guest.name}' has {counts[0]} rows, "
                f"host '{h.name}' has {n} (align the tables first, e.g. with PSI)"
            )
    pk, sk = guest(_g_keygen, num_returns=2, name="secureboost/keygen")(key_bits, insecure)
    tree_refs: list = []
    seconds: list[float] = []
    margin = guest(_zeros)(counts[0])
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=p["trees"], desc="secureboost", leave=False)
    for t in range(p["trees"]):
        t0 = time.perf_counter()
        use = [] if (guest_first_tree and t == 0) else list(range(len(hosts)))
        with rt.scope("secureboost"), rt.scope(f"tree{t}"):
            ts, enc, rows = guest(_g_tree_start, num_returns=3, name="secureboost/gradients")(
                g, margin, pk, len(use), objective
            )
            enc_at = [rt.send(enc, to=hosts[k], tag="secureboost/gh") for k in use]
            for level in range(p["depth"]):
                with rt.scope(f"level{level}"):
                    hists = []
                    for k, e in zip(use, enc_at):
                        r = rt.send(rows, to=hosts[k], tag="secureboost/rows")
                        hh = hosts[k](_h_histograms, name="secureboost/histograms")(
                            hs[k], e, r, bins
                        )
                        hists.append(rt.send(hh, to=guest, tag="secureboost/hist"))
                    out = guest(_g_decide, num_returns=1 + len(use), name="secureboost/split")(
                        ts, g, sk, enc, t, level, p, *hists
                    )
                    ts, reqs = (out, ()) if not use else (out[0], out[1:])
                    dirs = []
                    for k, q in zip(use, reqs):
                        at_h = rt.send(q, to=hosts[k], tag="secureboost/split")
                        hs[k], d = hosts[k](_h_split, num_returns=2, name="secureboost/split")(
                            hs[k], at_h, bins
                        )
                        dirs.append(rt.send(d, to=guest, tag="secureboost/directions"))
                    ts, rows = guest(_g_apply, num_returns=2, name="secureboost/partition")(
                        ts, *reqs, *dirs
                    )
            tree, margin = guest(_g_finish, num_returns=2, name="secureboost/leaves")(
                ts, margin, p, use
            )
        rt.wait(margin)
        tree_refs.append(tree)
        seconds.append(time.perf_counter() - t0)
        if bar is not None:
            bar.update()
        elif callable(progress):
            progress(t, p["trees"], seconds[-1])
    if bar is not None:
        bar.close()
    model = SecureBoostModel(rt, guest, hosts, p, g, hs)
    model.trees, model.seconds_per_tree = tree_refs, seconds
    model.bytes_sent = rt.ledger.total_bytes - bytes0
    return model


def _count(n: int) -> int:
    return int(n)


def _public_counts(rt: Any, guest: Any, ng: Any, hosts: list, nh: list) -> list[int]:
    """Row counts, published by each party (public metadata)."""
    refs = [guest(_count, declare="public", name="secureboost/rows")(ng)]
    refs += [h(_count, declare="public", name="secureboost/rows")(n) for h, n in zip(hosts, nh)]
    return [int(v) for v in rt.get(refs)]
