"""De-identified joint analytics: joint tables on shares with release gates
(`table`, `result`), per-row steps at the parties (`rows`)."""

from cipherray.workloads.analytics.result import DP, Result
from cipherray.workloads.analytics.table import JoinedTable, TableError, UnionTable

__all__ = ["DP", "JoinedTable", "Result", "TableError", "UnionTable"]
