"""De-identification for one party's table: pseudonyms, generalisation, k-anonymity, risk.

- `pseudonyms`: HMAC-SHA-256 tokens, deterministic AES-SIV pseudonyms (re-identifiable by
  the key holder), key files.
- `hierarchy`: generalisation hierarchies (intervals, dates, prefixes, categorical trees).
- `mondrian`: Mondrian k-anonymity with optional distinct ℓ-diversity / t-closeness and a
  suppression limit, vectorised on NumPy.
- `joint`: joint pseudonyms of several parties (commutative X25519 blinding) and the
  steps of their authorised re-identification.
- `risk`: ARX's prosecutor / journalist / marketer risks, achieved k / ℓ / t, NCP / GCP.

Pure pandas / NumPy / cryptography (and gmpy2 for `joint`): no Ray, no `cipherray.runtime`.
"""

from cipherray.protocols.deid.errors import (
    ColumnError,
    ConstraintError,
    DeidError,
    EmptyInputError,
    HierarchyError,
    InputFileError,
    KeyFileError,
    NonNumericError,
    ParameterError,
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
    "ColumnError",
    "ConstraintError",
    "DateHierarchy",
    "DeidError",
    "EmptyInputError",
    "Hierarchy",
    "HierarchyError",
    "InputFileError",
    "IntervalHierarchy",
    "KeyFileError",
    "MondrianResult",
    "NonNumericError",
    "ParameterError",
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
