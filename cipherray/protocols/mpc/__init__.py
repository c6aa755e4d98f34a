"""Secure computation on additive shares over Z_2^64, written against `Engine`.

Modules (import them directly; nothing is re-exported here so that importing the
engine stays cheap):

- `context`     `MPCContext` (engine, provider, frac_bits, tag): every protocol's
                first argument
- `engine`      the Engine contract, `PerParty`, `LocalEngine`, `DEALER`
- `providers`   correlated randomness: `DealerProvider` (seed-compressed, pooled),
                `PaillierProvider` (two members, no dealer, products only)
- `ot_provider` `OTProvider`: every kind for two members, no dealer, from OT extension
- `ring`        exact Z_2^64 helpers, fast `matmul_u64` (limb-split float64 GEMMs)
- `arithmetic`  Beaver `mul`, `square`, `matmul`, `mul_public`, `matmul_public`
- `truncation`  `truncate` (SecureML local / wrap-count), `divide_public`
- `overflow`    the optional domain check of products (`check_overflow=True`)
- `binary`      XOR-shared AND, A2B sign extraction (Kogge-Stone, or a bit-sliced
                carry tree where AND triples are costly), B2A
- `millionaire` the sign bit for two members by CrypTFlow2's millionaires' protocol
                (1-of-2^m OT leaves, a tree of paired ANDs), where OTs are the cost
- `compare`     `relation` (`lt`, `gt`, `le`, `ge`, `eq`), `ltz`, `relu`, `maximum`,
                `minimum`, `where`
- `functions`   `sigmoid`, `tanh`, `exp`, `reciprocal`, `inv_sqrt`, `sqrt`, `div_public`
- `logreg`      `train_logreg` on shares and its plaintext twin
- `testing`     `OpaqueEngine` (Engine API only, pickles every step) and test helpers
"""
