"""Output files a workload writes: never partially (a temporary name, then a rename)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path next to `path` (same suffix, so writers that go by the extension
    still work); it replaces `path` only when the block finishes without an error, and
    is removed otherwise."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    """`path` holds `text` afterwards, or is unchanged if writing failed."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
