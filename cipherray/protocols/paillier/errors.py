"""Exceptions raised by the Paillier package."""

from __future__ import annotations


class EncodingOverflowError(OverflowError, ValueError):
    """A plaintext is outside the encodable range (|mantissa| > max_int) or a
    decrypted value lies in the overflow band (n/3 .. 2n/3).

    Subclasses both ``OverflowError`` and ``ValueError`` so either can be caught.
    """


class KeyMismatchError(ValueError):
    """Ciphertexts, or a ciphertext and a key, belong to different Paillier keys."""


HOMOMORPHIC_ONLY = (
    "Paillier is additively homomorphic only: ciphertexts can be added to ciphertexts "
    "and multiplied by plaintexts, not multiplied or divided by other ciphertexts"
)
