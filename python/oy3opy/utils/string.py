"""String helpers."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["tojson"]


def tojson(obj: Any) -> str:
    """Compact JSON with non-ASCII characters kept as they are.

    >>> tojson({'a': 'é', 'b': [1, 2]})
    '{"a":"é","b":[1,2]}'
    """
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
