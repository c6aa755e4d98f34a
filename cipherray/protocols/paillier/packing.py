"""BatchCrypt-style packing: many bounded fixed-point values in one plaintext.

Layout. Each value ``v`` with ``|v| <= bound`` is quantised to ``q = round(v * 16^-e)``
(base-16 exponent ``e`` from ``precision``, as in :mod:`.encoding`) and shifted to
``s = q + B`` with ``B = ceil(bound * 16^-e)``, so ``0 <= s <= 2B``. ``slots`` such
values are laid out little-endian in one plaintext ``P = sum_j s_j * 2^(j*slot_bits)``
with ``slots = (bits(n) - 3) // slot_bits`` (so P < n/3 = max_int even when full).

Sums. Adding ciphertexts adds slotwise; after ``k`` addends a slot holds
``sum q + k*B <= 2kB``. The packer is told ``max_addends`` and requires
``max_addends * 2B < 2^slot_bits`` (checked at pack time), so no slot ever carries into
its neighbour; ``PackedCipherArray.__add__`` counts addends and raises
``EncodingOverflowError`` beyond ``max_addends``. ``unpack`` removes ``k*B`` per slot
and rescales; a slot above ``2kB`` (impossible unless tampered) raises ValueError.

Use: ``pack`` at each party, ``+`` (or ``packed_sum``) at the aggregator,
``unpack(sk, total)`` at the key holder gives the elementwise sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import encoding as enc
from .arith import _decrypt_raw
from .cipher_array import CipherArray
from .errors import EncodingOverflowError
from .keys import PrivateKey, PublicKey


@dataclass(frozen=True)
class PackedCipherArray:
    """Packed ciphertexts plus the layout needed to unpack them."""

    cipher: CipherArray
    shape: tuple
    count: int
    slot_bits: int
    slots: int
    offset: int  # B, in units of 16^exponent
    exponent: int
    kind: str
    max_addends: int
    addends: int = 1

    def _layout(self) -> tuple:
        return (
            self.shape,
            self.slot_bits,
            self.slots,
            self.offset,
            self.exponent,
            self.kind,
            self.max_addends,
        )

    def __add__(self, other: PackedCipherArray) -> PackedCipherArray:
        if not isinstance(other, PackedCipherArray):
            raise TypeError("packed ciphertexts can only be added to packed ciphertexts")
        if other._layout() != self._layout():
            raise ValueError("packed ciphertexts have different layouts")
        total = self.addends + other.addends
        if total > self.max_addends:
            raise EncodingOverflowError(
                f"sum of {total} packed ciphertexts exceeds max_addends={self.max_addends}: "
                "slots would overflow"
            )
        return replace(self, cipher=self.cipher + other.cipher, addends=total)

    def __len__(self) -> int:
        return self.cipher.size


def pack(
    pk: PublicKey,
    values: Any,
    slot_bits: int | None = None,
    *,
    max_addends: int,
    bound: float = 1.0,
    precision: float = 2.0**-16,
) -> PackedCipherArray:
    """Encrypt ``values`` (any shape, |v| <= bound) packed ``slots`` per ciphertext.

    ``slot_bits`` defaults to the minimum that holds ``max_addends`` summands. Integer
    arrays are packed exactly (``precision`` ignored, exponent 0)."""
    arr = np.asarray(values)
    kind = enc.classify(arr)
    if max_addends < 1:
        raise ValueError("max_addends must be >= 1")
    if arr.size and not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError("cannot pack NaN or infinity")
    if arr.size and float(np.max(np.abs(arr.astype(np.float64)))) > bound:
        raise ValueError(f"values outside [-{bound}, {bound}] cannot be packed")
    exponent = 0 if kind == enc.INT else enc.precision_to_exponent(precision)
    scale = enc.BASE ** (-exponent) if exponent <= 0 else 1
    offset = math.ceil(bound * scale) if exponent <= 0 else math.ceil(bound / enc.BASE**exponent)
    need = (max_addends * 2 * offset).bit_length()
    if slot_bits is None:
        slot_bits = need
    if max_addends * 2 * offset >= 1 << slot_bits:
        raise ValueError(
            f"slot_bits={slot_bits} too small for {max_addends} addends of bound {bound} "
            f"at precision 16^{exponent} (need >= {need})"
        )
    slots = (pk.bits - 3) // slot_bits
    if slots < 1:
        raise ValueError("slot_bits larger than the plaintext space")
    q = enc.mantissas(arr, kind, exponent)
    if q and (max(q) > offset or min(q) < -offset):
        raise ValueError("quantised value outside the packing bound")
    s = [v + offset for v in q]
    packed = []
    for i in range(0, len(s), slots):
        p = 0
        for v in reversed(s[i : i + slots]):
            p = (p << slot_bits) | v
        packed.append(p)
    obj = np.fromiter(packed, dtype=object, count=len(packed))
    cipher = pk.encrypt(obj)
    return PackedCipherArray(
        cipher, arr.shape, arr.size, slot_bits, slots, offset, exponent, kind, max_addends, 1
    )


def packed_sum(items: list[PackedCipherArray]) -> PackedCipherArray:
    """Sum of packed ciphertexts (checks the addend budget)."""
    items = list(items)
    if not items:
        raise ValueError("nothing to sum")
    total = items[0]
    for it in items[1:]:
        total = total + it
    return total


def unpack(sk: PrivateKey, packed: PackedCipherArray) -> np.ndarray:
    """Decrypt and split: the elementwise sums of the packed values (float64, or int64
    for integer inputs)."""
    if packed.cipher.public_key != sk.public_key:
        raise ValueError("packed ciphertexts were produced under a different key")
    ms = _decrypt_raw(sk, packed.cipher._data.ravel().tolist())
    mask = (1 << packed.slot_bits) - 1
    k, b = packed.addends, packed.offset
    top = 2 * k * b
    out: list[int] = []
    for m in ms:
        m = int(m)
        for _ in range(packed.slots):
            if len(out) == packed.count:
                break
            s = m & mask
            if s > top:
                raise ValueError("packed slot out of range (tampered ciphertext or bad layout)")
            out.append(s - k * b)
            m >>= packed.slot_bits
    if packed.kind == enc.INT:
        return np.array(out, dtype=np.int64).reshape(packed.shape)
    return np.ldexp(np.array(out, dtype=np.float64), enc.LOG2_BASE * packed.exponent).reshape(
        packed.shape
    )
