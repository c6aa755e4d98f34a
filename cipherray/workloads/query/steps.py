"""Party-side steps of the hidden-query job (run inside each party's actors; no Ray here).

The holder's file is read only by the holder's steps; what leaves the holder is the
encrypted table (:class:`TableMessage`), OPRF replies and, in the joint form, blinded and
sealed tags. The querier's keys leave the querier only blinded."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cipherray.protocols.query import joint, oprf, table
from cipherray.workloads import files

KEY_SEP = "\x1f"  # joins composite keys


class MissingColumnError(ValueError):
    """A key or label column is not in the file."""


def _read(path: str, columns: list[str], what: dict[str, str]) -> pd.DataFrame:
    if not os.path.exists(path):
        raise FileNotFoundError(f"input file {path} does not exist")
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            head = pd.read_parquet(path).astype(str)
        else:
            head = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: cannot be parsed ({type(e).__name__}: {e})") from e
    for c in columns:
        if c not in head.columns:
            # names the missing column only, never the party's other columns
            raise MissingColumnError(f"{path}: {what[c]} column {c!r} not found")
    return head


def _keys(df: pd.DataFrame, key_cols: list[str]) -> pd.Series:
    vals = df[key_cols[0]].astype(str).str.strip()
    for c in key_cols[1:]:
        vals = vals + KEY_SEP + df[c].astype(str).str.strip()
    return vals


@dataclass
class HolderRows:
    keys: list[bytes]
    labels: np.ndarray  # (n, W) uint8
    stats: dict

    def __repr__(self) -> str:
        return f"<HolderRows: {len(self.keys)} rows (secret)>"


def encode_label(values: list[str]) -> bytes:
    """A row's label columns as bytes: a compact JSON list (never contains a NUL byte, so
    the zero padding strips off)."""
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


def decode_label(raw: bytes) -> list[str]:
    return json.loads(raw.rstrip(b"\0").decode())


def holder_rows(
    path: str, key_cols: list[str], label_cols: list[str], width: int | None, duplicates: str
) -> HolderRows:
    """Read the holder's file; drop rows with an empty key (counted); duplicate keys: the
    first row is kept (counted), or DuplicateKeyError with ``duplicates="error"``; labels
    wider than ``width`` bytes: LabelWidthError (``width`` None: the widest label)."""
    what = {**{c: "label" for c in label_cols}, **{c: "key" for c in key_cols}}
    df = _read(path, key_cols + label_cols, what)
    keys = _keys(df, key_cols)
    empty = (keys.str.replace(KEY_SEP, "", regex=False) == "").to_numpy()
    df, keys = df[~empty], keys[~empty]
    dup = keys.duplicated(keep="first").to_numpy()
    if dup.any() and duplicates == "error":
        first = int(np.flatnonzero(dup)[0])
        raise table.DuplicateKeyError(
            f"{path}: {int(dup.sum())} duplicate key(s), the first at data row {first + 1}"
        )
    df, keys = df[~dup], keys[~dup]
    enc = [encode_label(list(r)) for r in df[label_cols].itertuples(index=False, name=None)]
    widest = max((len(b) for b in enc), default=0)
    if width is None:
        width = widest
    elif widest > width:
        row = next(i for i, b in enumerate(enc) if len(b) > width)
        raise table.LabelWidthError(
            f"{path}: a label of {widest} bytes exceeds the declared width {width} "
            f"(first at kept row {row + 1}; use --label-bytes)"
        )
    labels = table._check_labels(enc, len(enc), width)
    stats = {
        "rows": int(len(empty)),
        "missing": int(empty.sum()),
        "duplicates": int(dup.sum()),
        "kept": len(enc),
        "label_bytes": int(width),
    }
    return HolderRows([k.encode() for k in keys.tolist()], labels, stats)


def stats_of(rows: HolderRows) -> dict:
    return rows.stats


def new_holder_table(width: int, tag_bytes: int) -> table.HolderTable:
    return table.HolderTable(width, tag_bytes)


def key_chunk(rows: HolderRows, i: int, parts: int) -> list[bytes]:
    return list(np.array_split(np.asarray(rows.keys, dtype=object), parts)[i])


def own_seeds(item: tuple) -> np.ndarray:
    keys, t = item
    return oprf.evaluate_own(keys, t.key)


def setup(t: table.HolderTable, rows: HolderRows, *seed_parts: np.ndarray) -> tuple:
    """(holder table, setup message): the holder keeps the first, sends the second."""
    z = np.concatenate(seed_parts) if seed_parts else np.empty((0, 32), np.uint8)
    msg = t.setup_from_seeds(z, rows.labels)
    return t, msg


def answer(t: table.HolderTable, blinded: bytes) -> bytes:
    return t.answer(blinded)


@dataclass
class QuerierRows:
    keys: list[bytes]
    present: np.ndarray  # rows whose key is not empty

    def __repr__(self) -> str:
        return f"<QuerierRows: {len(self.keys)} keys (secret)>"


def querier_rows(path: str, key_cols: list[str]) -> QuerierRows:
    df = _read(path, key_cols, {c: "key" for c in key_cols})
    keys = _keys(df, key_cols)
    present = (keys.str.replace(KEY_SEP, "", regex=False) != "").to_numpy()
    return QuerierRows([k.encode() for k in keys[present].tolist()], present)


def query_count(q: QuerierRows) -> dict:
    return {"rows": int(len(q.present)), "keys": len(q.keys)}


def blind(q: QuerierRows) -> tuple:
    return oprf.blind(q.keys)


def write_result(
    path: str,
    q: QuerierRows,
    found: np.ndarray,
    labels: list[list[str]] | None,
    label_cols: list[str],
    out_dir: str,
    party: str,
    counts: np.ndarray | None = None,
) -> str:
    """OUT/<party>.csv: the querier's rows, ``found`` and the label columns (empty where
    not found); the joint form writes ``count`` instead of labels."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    added = ["found", *label_cols, *(["count"] if counts is not None else [])]
    clash = [c for c in added if c in df.columns]
    if clash:
        raise ValueError(f"{path}: already has column(s) {clash}; rename them first")
    n = len(df)
    f = np.zeros(n, dtype=bool)
    f[np.flatnonzero(q.present)] = found
    df["found"] = f
    if labels is not None:
        cols = {c: [""] * n for c in label_cols}
        for i, row in zip(np.flatnonzero(q.present), labels, strict=True):
            if row is not None:
                for c, v in zip(label_cols, row, strict=True):
                    cols[c][i] = v
        for c in label_cols:
            df[c] = cols[c]
    if counts is not None:
        cnt = np.zeros(n, dtype=np.int64)
        cnt[np.flatnonzero(q.present)] = counts
        df["count"] = cnt
    out = Path(out_dir) / f"{party}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_output(out) as tmp:
        df.to_csv(tmp, index=False)
    return str(out)


def finish(
    setup_msg: table.TableMessage,
    state: oprf.Blinded,
    reply: bytes,
    path: str,
    q: QuerierRows,
    label_cols: list[str],
    out_dir: str,
    party: str,
) -> dict:
    """The querier: its table copy, the lookups, the output file (a summary is public)."""
    querier = table.Querier(table.QuerierTable(setup_msg))
    found, raw = querier.finish(state, reply)
    labels = [decode_label(bytes(r)) if f else None for f, r in zip(found, raw, strict=True)]
    written = write_result(path, q, found, labels, label_cols, out_dir, party)
    return {"file": written, "found": int(found.sum()), "keys": len(q.keys)}


# -- joint blacklist ---------------------------------------------------------------------------
def joint_holder(path: str, key_cols: list[str], duplicates: str) -> joint.JointHolder:
    df = _read(path, key_cols, {c: "key" for c in key_cols})
    keys = _keys(df, key_cols)
    keys = keys[keys.str.replace(KEY_SEP, "", regex=False) != ""]
    dup = int(keys.duplicated().sum())
    if dup and duplicates == "error":
        raise table.DuplicateKeyError(f"{path}: {dup} duplicate key(s)")
    h = joint.JointHolder(keys.tolist())
    h.stats = {"rows": int(len(df)), "kept": len(h.keys), "duplicates": h.duplicates}
    return h


def joint_stats(h: joint.JointHolder) -> dict:
    return h.stats


def joint_blind_own(h: joint.JointHolder) -> tuple:
    msg = h.blind_own()
    return h, msg, h.slot_share()


def joint_evaluate(h: joint.JointHolder, blinded: bytes) -> bytes:
    return h.evaluate(blinded)


def joint_finish_own(h: joint.JointHolder, index: int, m: int, *msgs: bytes) -> joint.JointHolder:
    """msgs: the m - 1 other holders' replies, then the m slot-key shares in holder order."""
    h.finish_own(*msgs[: m - 1], index=index, slot_shares=msgs[m - 1 :])
    return h


def joint_seal(h: joint.JointHolder, querier_pk: bytes) -> tuple:
    return h.seal(querier_pk)


def joint_combine(*bags: tuple) -> tuple:
    return joint.combine(*bags)


def new_joint_querier(holders: int) -> tuple:
    q = joint.JointQuerier(holders)
    return q, q.public_key


def joint_open(q: joint.JointQuerier, bag: tuple) -> joint.JointQuerier:
    q.open(bag)
    return q


def joint_finish(
    jq: joint.JointQuerier,
    state: oprf.Blinded,
    path: str,
    q: QuerierRows,
    threshold: int,
    out_dir: str,
    party: str,
    *replies: bytes,
) -> dict:
    counts = jq.counts(state, *replies)
    found = counts >= threshold
    written = write_result(path, q, found, None, [], out_dir, party, counts=counts)
    return {"file": written, "found": int(found.sum()), "keys": len(q.keys)}
