"""De-identification for one party's table: pseudonyms, generalisation, k-anonymity, risk.

- `pseudonyms`: HMAC-SHA-256 tokens, deterministic AES-SIV pseudonyms (re-identifiable by
  the key holder), key files.
- `hierarchy`: generalisation hierarchies (intervals, dates, prefixes, categorical trees).
- `mondrian`: Mondrian k-anonymity with optional distinct ℓ-diversity / t-closeness and a
  suppression limit, vectorised on NumPy.
- `risk`: ARX's prosecutor / journalist / marketer risks, achieved k / ℓ / t, NCP / GCP.

Pure pandas / NumPy / cryptography: no Ray, no `cipherray.runtime`.
"""

from cipherray.protocols.deid.errors import (
    ConstraintError,
    DeidError,
    HierarchyError,
    KeyFileError,
    SuppressionLimitError,
    TokenError,
)
from cipherray.protocols.deid.hierarchy import (
    DateHierarchy,
    Hierarchy,
    IntervalHierarchy,
    PrefixHierarchy,
    TreeHierarchy,
    make_hierarchy,
)
from cipherray.protocols.deid.mondrian import MondrianResult, mondrian
from cipherray.protocols.deid.pseudonyms import (
    SivPseudonymizer,
    hmac_tokens,
    load_key,
    new_key_file,
)
from cipherray.protocols.deid.risk import (
    achieved_k,
    certainty_penalty,
    distinct_l,
    journalist_risk,
    marketer_risk,
    prosecutor_risk,
    risk_report,
    t_closeness,
)

__all__ = [
    "ConstraintError",
    "DateHierarchy",
    "DeidError",
    "Hierarchy",
    "HierarchyError",
    "IntervalHierarchy",
    "KeyFileError",
    "MondrianResult",
    "PrefixHierarchy",
    "SivPseudonymizer",
    "SuppressionLimitError",
    "TokenError",
    "TreeHierarchy",
    "achieved_k",
    "certainty_penalty",
    "distinct_l",
    "hmac_tokens",
    "journalist_risk",
    "load_key",
    "make_hierarchy",
    "marketer_risk",
    "mondrian",
    "new_key_file",
    "prosecutor_risk",
    "risk_report",
    "t_closeness",
]
