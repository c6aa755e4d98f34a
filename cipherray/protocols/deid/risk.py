"""Re-identification risk (ARX's models), privacy levels reached, and information loss.

Risk models, as ARX defines them (Prasser et al., ARX documentation "Risk analysis"),
over the equivalence classes of the released table (suppressed rows excluded):

- prosecutor: the attacker knows the target is in the data. A record's risk is 1/|class|;
  highest risk = 1 / smallest class; average risk = mean record risk = #classes / #rows;
  records at risk = fraction of records whose risk exceeds a threshold.
- journalist: the attacker does not know the target is in the sample, only in a
  population. With a population table (the same generalised QI columns) a record's risk
  is 1/F, F the size of its class in the population; highest = 1/min F, average = mean
  record risk. Without a population this is the prosecutor model (the sample is taken as
  the population), as in ARX when no population model is given.
- marketer: the expected fraction of records re-identified when linking all of them:
  #classes / #rows on the sample (with a population: mean of f/F over records).

Privacy levels reached: k (smallest class), distinct ℓ (fewest distinct sensitive values
in a class) and t (largest EMD between a class's sensitive distribution and the table's;
ordered distance for numbers, equal distance for categories — Li, Li & Venkatasubramanian
2007, as ARX and pycanon compute it).

Information loss: the normalised certainty penalty (NCP, Xu et al. 2006) per QI and class
— (hi - lo)/(max - min) for ranges, (leaves - 1)/(domain - 1) for sets and hierarchy
nodes, 1 for suppressed rows — and GCP, its mean over rows and QIs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cipherray.protocols.deid.mondrian import MondrianResult


def range_penalty(width: np.ndarray | float, full: np.ndarray | float) -> np.ndarray:
    """width / full, 0 where the full range is empty."""
    width = np.asarray(width, dtype=np.float64)
    return np.where(np.asarray(full) > 0, width / np.where(np.asarray(full) > 0, full, 1), 0.0)


def emd_to(q: np.ndarray, p: np.ndarray, ordered: bool) -> np.ndarray:
    """EMD of each row of q (classes x m distributions) to p (ordered or equal distance)."""
    m = q.shape[1]
    if m <= 1:
        return np.zeros(q.shape[0])
    r = q - p[None, :]
    if ordered:
        return np.abs(np.cumsum(r, axis=1)).sum(axis=1) / (m - 1)
    return 0.5 * np.abs(r).sum(axis=1)


def _kept(class_id: np.ndarray) -> np.ndarray:
    class_id = np.asarray(class_id)
    return class_id[class_id >= 0]


def class_sizes(class_id: np.ndarray) -> np.ndarray:
    """Rows per class (suppressed rows, id -1, excluded; empty ids dropped)."""
    sizes = np.bincount(_kept(class_id))
    return sizes[sizes > 0]


def achieved_k(class_id: np.ndarray) -> int:
    """The smallest equivalence class (0 if every row is suppressed)."""
    sizes = class_sizes(class_id)
    return int(sizes.min()) if len(sizes) else 0


def distinct_l(class_id: np.ndarray, sensitive: np.ndarray) -> int:
    """The fewest distinct sensitive values in any class."""
    class_id = np.asarray(class_id)
    keep = class_id >= 0
    codes, _ = pd.factorize(pd.Series(np.asarray(sensitive)[keep]), use_na_sentinel=False)
    pairs = np.unique(class_id[keep] * (codes.max() + 1) + codes)
    per_class = np.bincount(pairs // (codes.max() + 1))
    return int(per_class[per_class > 0].min()) if len(pairs) else 0


def t_closeness(class_id: np.ndarray, sensitive: np.ndarray, ordered: bool | None = None) -> float:
    """The largest EMD of a class's sensitive distribution to the whole (released) table's.

    1. Code the sensitive values in sorted order; `ordered` defaults to "numeric".
    2. Count (class, value) pairs, by chunks of classes so memory stays bounded.
    """
    class_id = np.asarray(class_id)
    keep = class_id >= 0
    s = pd.Series(np.asarray(sensitive)[keep])
    if ordered is None:
        ordered = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=False)
    m = len(uniques)
    if m <= 1:
        return 0.0
    p = np.bincount(codes, minlength=m) / len(codes)
    cls = class_id[keep]
    _, cls = np.unique(cls, return_inverse=True)
    n_classes = cls.max() + 1
    sizes = np.bincount(cls)
    worst, chunk = 0.0, max(1, (1 << 24) // m)
    order = np.argsort(cls, kind="stable")
    cls_sorted, codes_sorted = cls[order], codes[order]
    bounds = np.searchsorted(cls_sorted, np.arange(0, n_classes + chunk, chunk))
    for i, c0 in enumerate(range(0, n_classes, chunk)):
        a, b = bounds[i], bounds[i + 1]
        c1 = min(c0 + chunk, n_classes)
        counts = np.bincount(
            (cls_sorted[a:b] - c0) * m + codes_sorted[a:b], minlength=(c1 - c0) * m
        )
        q = counts.reshape(c1 - c0, m) / sizes[c0:c1, None]
        worst = max(worst, float(emd_to(q, p, ordered).max()))
    return worst


def prosecutor_risk(class_id: np.ndarray, threshold: float = 0.2) -> dict[str, float]:
    """ARX prosecutor risk: highest, average, and records at risk above `threshold`."""
    cls = _kept(class_id)
    if len(cls) == 0:
        return {"highest": 0.0, "average": 0.0, "records_at_risk": 0.0}
    sizes = np.bincount(cls)
    record_risk = 1.0 / sizes[cls]
    return {
        "highest": float(record_risk.max()),
        "average": float(np.count_nonzero(sizes) / len(cls)),
        "records_at_risk": float(np.mean(record_risk > threshold)),
    }


def _population_sizes(
    table: pd.DataFrame, qis: list[str], class_id: np.ndarray, population: pd.DataFrame
) -> np.ndarray:
    """F per released row: the row's QI tuple counted in the population (>= its sample count)."""
    keep = np.asarray(class_id) >= 0
    counts = population.groupby(qis, dropna=False).size().rename("_F")
    rows = table.loc[keep, qis].merge(counts, how="left", left_on=qis, right_index=True)
    F = rows["_F"].fillna(0).to_numpy(dtype=np.float64)
    f = np.bincount(np.asarray(class_id)[keep])[np.asarray(class_id)[keep]]
    if np.any(F < f):
        raise ValueError("the population has fewer rows of a class than the sample")
    return F


def journalist_risk(
    result: MondrianResult, population: pd.DataFrame | None = None, threshold: float = 0.2
) -> dict[str, float]:
    """ARX journalist risk; without `population`, the prosecutor risk (sample = population)."""
    if population is None:
        return prosecutor_risk(result.class_id, threshold)
    F = _population_sizes(result.table, result.quasi_identifiers, result.class_id, population)
    if len(F) == 0:
        return {"highest": 0.0, "average": 0.0, "records_at_risk": 0.0}
    risk = 1.0 / F
    return {
        "highest": float(risk.max()),
        "average": float(risk.mean()),
        "records_at_risk": float(np.mean(risk > threshold)),
    }


def marketer_risk(result: MondrianResult, population: pd.DataFrame | None = None) -> float:
    """ARX marketer risk: #classes / #rows on the sample, or mean f/F with a population."""
    cls = _kept(result.class_id)
    if len(cls) == 0:
        return 0.0
    if population is None:
        return float(len(np.unique(cls)) / len(cls))
    F = _population_sizes(result.table, result.quasi_identifiers, result.class_id, population)
    return float(np.mean(1.0 / F))


def certainty_penalty(result: MondrianResult) -> dict[str, object]:
    """NCP per QI (mean over rows) and GCP (mean over rows and QIs); suppressed rows cost 1."""
    n = len(result.class_id)
    if n == 0:
        return {"ncp": {}, "gcp": 0.0}
    per_qi = (result.penalty * result.class_sizes[:, None]).sum(axis=0) + result.n_suppressed
    ncp = dict(zip(result.quasi_identifiers, (per_qi / n).tolist()))
    return {"ncp": ncp, "gcp": float(np.mean(list(ncp.values()))) if ncp else 0.0}


def risk_report(result: MondrianResult, threshold: float = 0.2) -> dict[str, object]:
    """Everything above for one result: k, ℓ, t, the three risk models, NCP / GCP."""
    report: dict[str, object] = {
        "rows": len(result.class_id),
        "suppressed": result.n_suppressed,
        "classes": int(len(result.class_sizes)),
        "k": achieved_k(result.class_id),
        "prosecutor": prosecutor_risk(result.class_id, threshold),
        "journalist": journalist_risk(result, None, threshold),
        "marketer": marketer_risk(result),
        **certainty_penalty(result),
    }
    if result.sensitive is not None:
        s = result.table[result.sensitive].to_numpy()
        report["l"] = distinct_l(result.class_id, s)
        report["t"] = t_closeness(result.class_id, s)
    return report
