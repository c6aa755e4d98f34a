"""Hidden query (keyword lookup whose keys the holder never learns) and joint blacklists.

- :mod:`.oprf` -- 2HashDH OPRF on the prime-order group of edwards25519 (libsodium);
- :mod:`.table` -- one holder's encrypted, updatable table and the querier's lookups;
- :mod:`.joint` -- several holders' lists: the querier learns how many list a key.
"""

from .joint import JointHolder, JointQuerier, combine
from .oprf import OprfError, OprfKey
from .table import (
    DuplicateKeyError,
    HolderTable,
    LabelWidthError,
    Querier,
    QuerierTable,
    TableMessage,
)

__all__ = [
    "DuplicateKeyError",
    "HolderTable",
    "JointHolder",
    "JointQuerier",
    "LabelWidthError",
    "OprfError",
    "OprfKey",
    "Querier",
    "QuerierTable",
    "TableMessage",
    "combine",
]
