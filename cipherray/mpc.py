"""numpy-like helpers for shared values: `cipherray.mpc.concatenate([...], axis=...)`."""

from cipherray import mpc_concatenate as concatenate

__all__ = ["concatenate"]
