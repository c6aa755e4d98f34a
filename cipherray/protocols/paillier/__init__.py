"""Vectorised Paillier (g = n+1, DJN randomness, CRT decryption), interoperable with phe.

Public API::

    pk, sk = keygen(bits=2048, insecure=False, rand_bits=None)
    c = pk.encrypt(x, precision=None)       # CipherArray, same shape as x
    x = sk.decrypt(c)                        # numpy array
    c + c, c + x, -c, c - c, c * x, c.sum(axis), c @ X, X @ c, c[i], concatenate(...)
    c.to_bytes(), CipherArray.from_bytes(b, pk), pickle
    PublicKey.from_phe / to_phe, PrivateKey.from_phe / to_phe, CipherArray.from_phe / to_phe
    pk.precompute(count)                     # offline randomness pool
    pack(pk, values, slot_bits, max_addends=..) / unpack(sk, packed)
    encrypt_with_exponents(pk, m, a)         # deterministic, for backend cross-checks

See the modules: encoding (base-16 fixed point), randomness (DJN scheme and its
security argument), keys, cipher_array, arith (raw kernels), packing, interop, backend
(CPU or GPU) and device (ciphertexts kept on the GPU between operations).
No Ray import here.
"""

from .arith import get_num_threads, set_num_threads
from .backend import get_backend, set_backend
from .cipher_array import CipherArray, concatenate, validate_ciphertexts
from .encoding import BASE, DEFAULT_PRECISION, decode, encode
from .errors import EncodingOverflowError, KeyMismatchError
from .interop import from_phe, to_phe
from .keys import PrivateKey, PublicKey, encrypt_with_exponents, keygen
from .packing import PackedCipherArray, pack, packed_sum, unpack
from .randomness import RandomnessPool, default_rand_bits, security_level

__all__ = [
    "BASE",
    "DEFAULT_PRECISION",
    "CipherArray",
    "EncodingOverflowError",
    "KeyMismatchError",
    "PackedCipherArray",
    "PrivateKey",
    "PublicKey",
    "RandomnessPool",
    "concatenate",
    "get_backend",
    "set_backend",
    "decode",
    "default_rand_bits",
    "encode",
    "encrypt_with_exponents",
    "from_phe",
    "get_num_threads",
    "keygen",
    "pack",
    "packed_sum",
    "security_level",
    "set_num_threads",
    "to_phe",
    "unpack",
    "validate_ciphertexts",
]
