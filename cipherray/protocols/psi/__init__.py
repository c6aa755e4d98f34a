"""Private set intersection: ECDH-PSI on X25519, PSI-cardinality, intersection-sum
(ECDH + Paillier) and multi-party PSI. Pure Python/NumPy/cryptography; no Ray import.

Each protocol module documents its threat model, what each party learns and its
numbered steps; the ``step*`` functions are the per-party steps (pure functions of
arrays/bytes, which the runtime places at the parties), ``run_*_local`` composes them
in-process for tests and benchmarks.

Modules: ``identifiers`` (DataFrame keys -> canonical bytes), ``curve`` (hash to X25519,
blinding, chunking), ``matching``, ``ecdh``, ``cardinality``, ``intersection_sum``,
``multiparty``, ``streaming`` (chunked CSV/Parquet input).
"""

from .cardinality import run_psi_cardinality_local
from .curve import (
    DOMAIN,
    POINT_DTYPE,
    BlindingKey,
    LowOrderPointError,
    blind,
    blind_chunked,
    hash_and_blind,
    hash_and_blind_chunked,
    hash_to_points,
    new_salt,
)
from .ecdh import PsiResult, run_ecdh_psi_local
from .identifiers import (
    KeyTypeMismatchError,
    PreparedIds,
    check_key_types,
    describe_key_types,
    key_type,
    prepare_ids,
)
from .intersection_sum import run_intersection_sum_local
from .matching import count_matches, match_points
from .multiparty import run_multiparty_psi_local
from .streaming import HashedIds, hash_stream, iter_csv_ids, iter_parquet_ids

__all__ = [
    "DOMAIN",
    "POINT_DTYPE",
    "BlindingKey",
    "HashedIds",
    "KeyTypeMismatchError",
    "LowOrderPointError",
    "PreparedIds",
    "PsiResult",
    "blind",
    "blind_chunked",
    "check_key_types",
    "count_matches",
    "describe_key_types",
    "hash_and_blind",
    "hash_and_blind_chunked",
    "hash_stream",
    "hash_to_points",
    "iter_csv_ids",
    "iter_parquet_ids",
    "key_type",
    "match_points",
    "new_salt",
    "prepare_ids",
    "run_ecdh_psi_local",
    "run_intersection_sum_local",
    "run_multiparty_psi_local",
    "run_psi_cardinality_local",
]
