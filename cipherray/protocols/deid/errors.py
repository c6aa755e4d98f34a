"""Named errors of `cipherray.protocols.deid` (all are `DeidError`, a `ValueError`)."""

from __future__ import annotations


class DeidError(ValueError):
    """Base of every de-identification error."""


class KeyFileError(DeidError):
    """A pseudonymisation key file is missing, the wrong length, or readable by others."""


class TokenError(DeidError):
    """A SIV token is malformed or was tampered with (authentication failed)."""


class HierarchyError(DeidError):
    """An unknown hierarchy spec, a malformed hierarchy CSV, or a value it does not cover."""


class ConstraintError(DeidError):
    """k / ℓ / t cannot be met by the table at all (e.g. fewer than ℓ sensitive values)."""


class SuppressionLimitError(DeidError):
    """Meeting k would suppress more rows than the suppression limit allows."""


class InputFileError(DeidError):
    """An input file is missing, unreadable, or of an unknown format."""


class EmptyInputError(DeidError):
    """The input table has no rows."""


class ColumnError(DeidError):
    """A named column is not in the table (the message names the file and a close match)."""


class NonNumericError(DeidError):
    """A column that a numeric (or date) hierarchy generalises holds other values."""


class ParameterError(DeidError):
    """k, ℓ, t, the suppression limit or another setting is out of range for the table."""
