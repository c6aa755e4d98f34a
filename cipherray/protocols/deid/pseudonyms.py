"""Keyed pseudonyms: HMAC-SHA-256 tokens and deterministic AES-SIV (re-identifiable).

- `hmac_tokens(values, key)`: one-way tokens; equal values give equal tokens under one
  key, and nobody without the key can test a guess.
- `SivPseudonymizer(key)`: deterministic AES-SIV (RFC 5297); `encrypt` gives urlsafe
  base64 tokens, `decrypt` gives the values back, so the key holder can re-identify
  (authorised re-identification). A changed token fails authentication: `TokenError`.
- `new_key_file(path, kind)` / `load_key(path, kind)`: keys come from `os.urandom` and are
  stored raw with mode 0600; loading checks length and permissions and names the file.

Values are normalised to UTF-8 strings with `str()` (so 1 and "1" give one token, 1.0 and
1 do not); missing values (None / NaN / NaT) stay missing (None) and get no token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from cipherray.protocols.deid.errors import KeyFileError, TokenError

KEY_BYTES = {"hmac": 32, "siv": 64}
"""Fresh key length per kind; an HMAC key may be longer, a SIV key is exactly 64 bytes."""


def new_key_file(path: str | Path, kind: str = "hmac") -> Path:
    """Write a fresh random key for `kind` ("hmac" or "siv") to a new file with mode 0600.

    1. Check the kind and draw the key from `os.urandom`.
    2. Create the file exclusively with mode 0600 (an existing file is never overwritten).
    3. Write the raw key bytes and return the path.
    """
    if kind not in KEY_BYTES:
        raise KeyFileError(f"unknown key kind {kind!r}; expected one of {sorted(KEY_BYTES)}")
    key = os.urandom(KEY_BYTES[kind])
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    os.chmod(path, 0o600)  # the umask may have cleared bits; never widen them
    return path


def load_key(path: str | Path, kind: str = "hmac") -> bytes:
    """Read a key file written by `new_key_file`, checking permissions and length.

    1. Refuse a missing file, or one readable or writable by group / others.
    2. Check the length for `kind`: HMAC keys >= 32 bytes, SIV keys exactly 64 bytes.
    """
    path = Path(path)
    if kind not in KEY_BYTES:
        raise KeyFileError(f"unknown key kind {kind!r} for {path}")
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is accessible by group/others; chmod 600 it")
    _check_key(key, kind, f"key file {path}")
    return key


def _check_key(key: bytes, kind: str, where: str) -> None:
    need = KEY_BYTES[kind]
    if not isinstance(key, bytes | bytearray):
        raise KeyFileError(f"{where}: key must be bytes, got {type(key).__name__}")
    if kind == "siv" and len(key) != need:
        raise KeyFileError(f"{where}: an AES-SIV key is {need} bytes, got {len(key)}")
    if kind == "hmac" and len(key) < need:
        raise KeyFileError(f"{where}: an HMAC key needs at least {need} bytes, got {len(key)}")


def _as_strings(values: Iterable) -> tuple[list, np.ndarray]:
    """Values as a list of str (missing -> None) and the missing mask."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    missing = series.isna().to_numpy()
    # str() per value: pandas' astype(str) keeps missing values as NaN under pandas 3
    strings = ["" if m else str(v) for v, m in zip(series.tolist(), missing)]
    return strings, missing


def hmac_tokens(values: Iterable, key: bytes) -> np.ndarray:
    """HMAC-SHA-256 of each value's UTF-8 string under `key`, as 64-char hex (None if missing).

    1. Check the key (>= 32 bytes).
    2. Normalise values to strings; one OpenSSL HMAC call per value (`hmac.digest`).
    """
    _check_key(key, "hmac", "hmac_tokens")
    strings, missing = _as_strings(values)
    digest = hmac.digest
    key = bytes(key)
    out = [digest(key, s.encode(), hashlib.sha256).hex() for s in strings]
    tokens = np.array(out, dtype=object)
    tokens[missing] = None
    return tokens


class SivPseudonymizer:
    """Deterministic AES-SIV pseudonyms that the key holder can reverse.

    `context` (e.g. the column name) is bound as associated data, so a token from one
    column does not decrypt as another column's value.
    """

    def __init__(self, key: bytes, context: str = "") -> None:
        _check_key(key, "siv", "SivPseudonymizer")
        self._siv = AESSIV(bytes(key))
        self._ad = [context.encode()] if context else None

    def encrypt(self, values: Iterable) -> np.ndarray:
        """Tokens (urlsafe base64, no padding) of the values' UTF-8 strings; None if missing."""
        strings, missing = _as_strings(values)
        enc, ad, b64 = self._siv.encrypt, self._ad, base64.urlsafe_b64encode
        out = [b64(enc(s.encode(), ad)).rstrip(b"=").decode() for s in strings]
        tokens = np.array(out, dtype=object)
        tokens[missing] = None
        return tokens

    def decrypt(self, tokens: Iterable) -> np.ndarray:
        """Original strings back from tokens; a malformed or altered token raises TokenError."""
        dec, ad = self._siv.decrypt, self._ad
        out = []
        for i, t in enumerate(tokens):
            if t is None or (isinstance(t, float) and np.isnan(t)):
                out.append(None)
                continue
            try:
                raw = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
                out.append(dec(raw, ad).decode())
            except (InvalidTag, binascii.Error, ValueError, TypeError):
                raise TokenError(f"token {i} is malformed or was tampered with") from None
        return np.array(out, dtype=object)
