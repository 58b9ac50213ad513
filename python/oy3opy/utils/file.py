"""File helpers."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import IO, Any, Iterator

__all__ = ["io"]


@contextmanager
def io(path: str | os.PathLike[str], mode: str = "r", encoding: str | None = "utf-8", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open ``path`` as a context manager; for writing, create its parent folders first.

    >>> with io('/tmp/oy3opy-doc/x.txt', 'w') as f:
    ...     _ = f.write('hi')
    """
    if any(flag in mode for flag in "wax+"):
        parent = os.path.dirname(os.fspath(path))
        if parent:
            os.makedirs(parent, exist_ok=True)
    if "b" in mode:
        encoding = None
    with open(path, mode, encoding=encoding, **kwargs) as handle:
        yield handle
