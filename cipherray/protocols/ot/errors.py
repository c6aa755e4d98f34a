"""The error of the OT layer."""

from __future__ import annotations


class OTError(ValueError):
    """A malformed OT message or request. The message names the role ("OT sender" /
    "OT receiver"), the step ("setup", "extend", "cot", ...) and what was wrong."""
