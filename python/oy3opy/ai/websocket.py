"""The oy3o WebSocket server (the original JSON protocol, plus OpenAI-compatible HTTP on the
same port), run from Python.

>>> # asyncio.run(listen('127.0.0.1', 8443))      # serves until cancelled
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Mapping, Optional

from .. import _native
from ._config import Config, config, effective, engine_json

__all__ = ["listen"]


async def listen(
    host: str = "127.0.0.1",
    port: int = 8443,
    proxies: Any = None,
    *,
    token: Optional[str] = None,
    ready: Optional[Callable[[str], Any]] = None,
    config: Optional[Mapping[str, Any]] = None,
    **options: Any,
) -> None:
    """Runs the server on ``host:port`` until the task is cancelled.

    ``proxies`` (a URL or an httpx-style map) is used for upstream requests; ``token`` is
    required to bind beyond loopback; ``ready(address)`` is called once bound (useful with
    port 0); other keyword options are server settings (``origins``, ``max_chats``,
    ``max_in_flight``, ``max_frame_bytes``, ``idle_timeout_secs``,
    ``allow_client_credentials``, ...). Works under ``asyncio.run`` and with
    ``nest_asyncio.apply()``.
    """
    cfg = effective(globals()["config"], config, Config(proxy=proxies))
    server_json = json.dumps({"server": options}) if options else ""
    try:
        handle = _native.serve(host, port, engine_json(cfg), server_json, token)
    except Exception as exc:  # noqa: BLE001
        raise OSError(str(exc)) from None
    try:
        if ready is not None:
            ready(handle.address)
        await asyncio.Event().wait()
    finally:
        handle.stop()
