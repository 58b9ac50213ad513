"""The oy3o server from Python: the original WebSocket protocol, plus an OpenAI-compatible HTTP
API on the same port, run by the Rust engine.

The server uses the engine's own listeners only: Python listeners in ``config`` are not called
for requests that clients send (the engine's threads never call into Python).

>>> # asyncio.run(listen('127.0.0.1', 8443))      # serves until cancelled
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Mapping, Optional

from .. import _native
from ._config import Config, engine_layers
from ._config import config as _global_config

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
    """Serves on ``host:port`` until the task is cancelled, as the original ``listen``.

    - ``proxies``: a URL or an httpx-style ``{'http://': url, 'https://': url}`` map, used for
      the requests to the models.
    - ``token``: what clients must send (``Authorization: Bearer T`` or ``?token=T``); needed
      to bind anything but loopback.
    - ``ready(address)``: called once bound with ``'host:port'`` (useful with port 0).
    - ``config``: a per-server :class:`Config` over the global one (models, keys, aliases).
    - other keywords are server settings, as in a config file's ``[server]`` table:
      ``origins``, ``allow_client_credentials``, ``allow_client_proxy``, ``max_frame_bytes``,
      ``max_chats``, ``max_in_flight``, ``idle_timeout_secs``, ``models``, ``chains``.

    Raises ``OSError`` when the address cannot be bound (in use, or open without a token) and
    ``ValueError`` for an unknown or invalid setting. Works under ``asyncio.run`` and with
    ``nest_asyncio.apply()``.
    """
    layers = engine_layers([_global_config, config, Config(proxy=proxies)])
    server_json = json.dumps({"server": options}) if options else ""
    handle = _native.serve(host, port, layers, server_json, token)
    try:
        if ready is not None:
            ready(handle.address)
        await asyncio.Event().wait()
    finally:
        handle.stop()
