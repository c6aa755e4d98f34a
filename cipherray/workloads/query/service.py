"""A hidden-query service on the runtime: the holder's table set up once, then many
queries and updates (the offline/online split of :mod:`cipherray.protocols.query.table`).

    svc = QueryService(rt, holder="bureau", querier="bank", width=32)
    svc.setup(keys_ref, labels_ref)          # refs at the holder; the table goes over once
    found, labels = svc.query(asked_ref)     # a ref at the querier; one round per batch
    svc.update(new_keys_ref, new_labels_ref, deleted_ref)   # only the changes go over

Every message goes through ``rt.send`` under the ``query`` protocol's tags (counted in the
ledger); the holder's key and rows stay in the holder's workers, the table copy and the
results in the querier's.
"""

from __future__ import annotations

from typing import Any

from cipherray.protocols.query import oprf, table
from cipherray.workloads.query.job import QUERY_MESSAGES


def _new_table(width: int, tag_bytes: int) -> table.HolderTable:
    return table.HolderTable(width, tag_bytes)


def _setup(t: table.HolderTable, keys: list, labels: Any) -> tuple:
    msg = t.setup(keys, labels)
    return t, msg


def _update(t: table.HolderTable, keys: list, labels: Any, deletes: list) -> tuple:
    msg = t.update(keys, labels, deletes)
    return t, msg


def _load(msg: table.TableMessage) -> table.QuerierTable:
    return table.QuerierTable(msg)


def _apply(q: table.QuerierTable, msg: table.TableMessage) -> table.QuerierTable:
    q.apply(msg)
    return q


def _blind(keys: list) -> tuple:
    return oprf.blind(keys)


def _answer(t: table.HolderTable, blinded: bytes) -> bytes:
    return t.answer(blinded)


def _finish(q: table.QuerierTable, state: oprf.Blinded, reply: bytes) -> tuple:
    found, labels = table.Querier(q).finish(state, reply)
    return found, labels


def _size(msg: table.TableMessage) -> int:
    return len(msg) + len(msg.deleted)


class QueryService:
    """One holder's table, one querier's copy, kept as refs in their parties' workers."""

    def __init__(self, rt: Any, holder: Any, querier: Any, width: int, tag_bytes: int = 12):
        self.rt = rt
        self.holder = rt.party(holder)
        self.querier = rt.party(querier)
        rt.protocol("query", QUERY_MESSAGES)
        self._table = self.holder(_new_table)(width, tag_bytes)
        self._copy = None

    def _send(self, ref: Any, dst: Any, tag: str) -> Any:
        return self.rt.send(ref, to=dst, tag=f"query/{tag}")

    def setup(self, keys: Any, labels: Any) -> None:
        """Offline: the holder's rows (refs at the holder) -> the querier's copy."""
        if self._copy is not None:
            raise ValueError("setup was already done; use update()")
        self._table, msg = self.holder(_setup, num_returns=2)(self._table, keys, labels)
        self._copy = self.querier(_load)(self._send(msg, self.querier, "setup"))

    def update(self, keys: Any, labels: Any, deletes: Any) -> None:
        """New or changed rows and deleted keys (refs at the holder): only they go over."""
        if self._copy is None:
            raise ValueError("update() before setup()")
        self._table, msg = self.holder(_update, num_returns=2)(self._table, keys, labels, deletes)
        self._copy = self.querier(_apply)(self._copy, self._send(msg, self.querier, "setup"))

    def query(self, keys: Any) -> tuple:
        """Online, one round: (found, labels) as refs at the querier for the keys (a ref
        at the querier). The holder sees the number of keys only."""
        if self._copy is None:
            raise ValueError("query() before setup()")
        state, blinded = self.querier(_blind, num_returns=2)(keys)
        reply = self.holder(_answer)(self._table, self._send(blinded, self.holder, "blinded"))
        at_q = self._send(reply, self.querier, "evaluated")
        return self.querier(_finish, num_returns=2)(self._copy, state, at_q)


__all__ = ["QueryService"]
