"""De-identified joint analytics.

- `table`, `result`: joint tables on shares (privately joined or stacked) and their
  release gates (minimum group size, DP with a per-table budget); `rows` holds the
  steps that run at each party on its own table; `cipherray run stats --input ...`.
- `deid_job`: `cipherray run deid` (pseudonyms, Mondrian k-anonymity, risk report).
- `pseudonyms`: joint pseudonyms across parties and authorised re-identification.
"""

from cipherray.workloads.analytics.result import DP, Result
from cipherray.workloads.analytics.table import JoinedTable, TableError, UnionTable

__all__ = ["DP", "JoinedTable", "Result", "TableError", "UnionTable"]
