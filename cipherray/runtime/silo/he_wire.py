"""Paillier values on the cross-silo wire: public keys and ciphertext arrays, typed.

`wire.pack_value` encodes a step's message value as a msgpack skeleton plus one blob of
array bytes; this module adds the homomorphic values to that skeleton (no pickle):

    ["K", N]                 a `PublicKey`: its modulus n as a hex string (the receiver
                             makes its own DJN randomness base; encryption randomness
                             never changes what a ciphertext decrypts to)
    ["P", K, C]              a `CipherArray`: its key (a "K" node) and `C`, a byte leaf
                             of the blob holding `CipherArray.to_bytes` (header with kind,
                             exponent, key fingerprint, width, shape; then the ciphertexts)
    ["Q", P, LAYOUT]         a `PackedCipherArray`: its ciphertexts (a "P" node) and its
                             layout (shape, count, slot bits, slots, offset, exponent,
                             kind, max addends, addends: ints and a string)

Decoding checks everything a peer could get wrong, and raises `WireError` naming the
peer and the tag: a modulus of a size not in `ALLOWED_BITS`, even, a perfect square or
with a small factor; ciphertexts of another key, out of [1, n^2) or not invertible, a
payload whose length does not match its shape; a layout that is not the format's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cipherray.runtime.errors import WireError

# Sizes of n a receiver accepts. 2048 bits and up are the secure sizes (keygen's
# minimum); 512 and 1024 are the sizes tests make with keygen(..., insecure=True). A
# deployment that wants only secure keys narrows this set (he_wire.ALLOWED_BITS = ...).
ALLOWED_BITS = frozenset({512, 1024, 2048, 3072, 4096})
MAX_BITS = 4096
_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]
_KEYS: OrderedDict[int, Any] = OrderedDict()  # n -> PublicKey (keeps its DJN tables)
_KEYS_KEPT = 16


def is_he(value: Any) -> bool:
    """Whether `value` is a Paillier value this module encodes."""
    mod = type(value).__module__
    return mod.startswith("cipherray.protocols.paillier") and type(value).__name__ in (
        "PublicKey",
        "CipherArray",
        "PackedCipherArray",
    )


def encode(value: Any, leaf: Callable[[bytes], list]) -> list:
    """The skeleton node of a Paillier value; `leaf(b)` stores bytes in the blob and
    returns their node."""
    from cipherray.protocols.paillier import CipherArray, PackedCipherArray, PublicKey

    if isinstance(value, PublicKey):
        return ["K", format(int(value.n), "x")]
    if isinstance(value, CipherArray):
        return ["P", encode(value.public_key, leaf), leaf(value.to_bytes())]
    if isinstance(value, PackedCipherArray):
        layout = [
            [int(s) for s in value.shape], int(value.count), int(value.slot_bits),
            int(value.slots), int(value.offset), int(value.exponent), str(value.kind),
            int(value.max_addends), int(value.addends),
        ]  # fmt: skip
        return ["Q", encode(value.cipher, leaf), layout]
    raise TypeError(f"a {type(value).__name__} is not a Paillier value")


def decode(node: list, raw: Callable[[Any], bytes], peer: str, tag: str) -> Any:
    """The Paillier value of a skeleton node ("K", "P" or "Q"); `raw(leaf)` returns the
    bytes of a byte leaf (checked by the caller). WireError for anything malformed."""
    code = node[0]
    if code == "K" and len(node) == 2:
        return public_key(node[1], peer, tag)
    if code == "P" and len(node) == 3 and type(node[1]) is list and node[1][:1] == ["K"]:
        return ciphertexts(decode(node[1], raw, peer, tag), raw(node[2]), peer, tag)
    if code == "Q" and len(node) == 3 and type(node[1]) is list and node[1][:1] == ["P"]:
        return _packed(decode(node[1], raw, peer, tag), node[2], peer, tag)
    raise WireError(peer, tag, f"malformed Paillier value (node {code!r})")


def public_key(n_hex: Any, peer: str, tag: str) -> Any:
    """A `PublicKey` from its modulus (hex), validated: a size in ALLOWED_BITS, odd, not a
    perfect square, no factor below 2000. Keys are kept by n, so a key that arrives again
    reuses its randomness tables."""
    import gmpy2

    from cipherray.protocols.paillier import PublicKey

    if type(n_hex) is not str or not 0 < len(n_hex) <= MAX_BITS // 4:
        raise WireError(peer, tag, "a Paillier modulus is not a hex string of at most 4096 bits")
    try:
        n = int(n_hex, 16)
    except ValueError:
        raise WireError(peer, tag, "a Paillier modulus is not a hex string") from None
    bits = n.bit_length()
    if bits not in ALLOWED_BITS:
        raise WireError(
            peer, tag, f"a Paillier modulus of {bits} bits (allowed: {sorted(ALLOWED_BITS)})"
        )
    if n % 2 == 0 or any(n % p == 0 for p in _SMALL_PRIMES) or gmpy2.is_square(n):
        raise WireError(
            peer, tag, "a Paillier modulus that is even, a square or has a small factor"
        )
    key = _KEYS.get(n)
    if key is None:
        key = PublicKey(n)
        _KEYS[n] = key
        if len(_KEYS) > _KEYS_KEPT:
            _KEYS.popitem(last=False)
    else:
        _KEYS.move_to_end(n)
    return key


def ciphertexts(key: Any, b: bytes, peer: str, tag: str) -> Any:
    """A `CipherArray` from its `to_bytes` form under `key`: the header's fingerprint
    must be the key's, the payload must hold exactly its shape's ciphertexts, and each
    must be in [1, n^2) and invertible."""
    from cipherray.protocols.paillier import CipherArray

    try:
        return CipherArray.from_bytes(b, key)
    except (ValueError, OverflowError) as e:  # KeyMismatchError is a ValueError
        raise WireError(peer, tag, f"bad ciphertexts: {e}") from None


def _packed(cipher: Any, layout: Any, peer: str, tag: str) -> Any:
    from cipherray.protocols.paillier import PackedCipherArray

    types = [list, int, int, int, int, int, str, int, int]
    if type(layout) is not list or [type(x) for x in layout] != types:
        raise WireError(peer, tag, "a packed ciphertext layout is not the format's")
    shape, count, slot_bits, slots, offset, exponent, kind, max_addends, addends = layout
    size = 1
    for s in shape:
        if type(s) is not int or s < 0:
            raise WireError(peer, tag, "a packed ciphertext layout has a bad shape")
        size *= s
    if not (
        count == size and 0 < slot_bits <= MAX_BITS and 0 < slots <= MAX_BITS
        and cipher.size == -(-count // slots) and offset >= 0 and kind in ("int", "float")
        and 0 < addends <= max_addends
    ):  # fmt: skip
        raise WireError(peer, tag, "a packed ciphertext layout does not match its ciphertexts")
    return PackedCipherArray(
        cipher, tuple(shape), count, slot_bits, slots, offset, exponent, kind, max_addends,
        addends,
    )  # fmt: skip
