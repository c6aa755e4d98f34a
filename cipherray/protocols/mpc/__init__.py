"""Secure computation on additive shares over Z_2^64, written against `Engine`.

Modules (import them directly; nothing is re-exported here so that importing the
engine stays cheap):

- `engine`      the Engine contract, `PerParty`, `LocalEngine`, `DEALER`
- `providers`   correlated randomness: `DealerProvider` (seed-compressed, pooled),
                `PaillierProvider` (two members, no dealer)
- `ring`        exact Z_2^64 helpers, fast `matmul_u64` (limb-split float64 GEMMs)
- `arithmetic`  Beaver `mul`, `square`, `matmul`, `mul_public`, `matmul_public`
- `truncation`  `truncate` (SecureML local / wrap-count), `divide_public`
- `binary`      XOR-shared AND, A2B sign extraction (Kogge-Stone), B2A
- `compare`     `ltz`, `lt`, `gt`, `le`, `ge`, `eq`, `relu`, `maximum`, `minimum`, `where`
- `functions`   `sigmoid`, `tanh`, `exp`, `reciprocal`, `inv_sqrt`, `sqrt`, `div_public`
- `logreg`      `train_logreg` on shares and its plaintext twin
- `testing`     `OpaqueEngine` (Engine API only, pickles every step) and test helpers
"""
