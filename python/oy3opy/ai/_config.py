"""Configuration in the original library's shape, and its translation for the engine."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

Listener = Callable[[Dict[str, Any]], Any]
Listeners = Mapping[str, Union[Listener, Iterable[Listener]]]

__all__ = ["Config", "config", "effective", "engine_json", "listeners_for"]

_MAPS = ("cookies", "contexts", "proxies", "listeners", "providers", "aliases")
_SCALARS = ("model", "context", "cookie", "proxy", "listener", "options", "store")


class Config(dict):
    """A configuration: a dict with attribute access.

    Keys: ``model``, ``context``, ``cookie``, ``proxy``, ``listener`` (listeners for every
    model), and the per-model maps ``cookies``, ``contexts``, ``proxies``, ``listeners``
    (keyed by model reference or provider name, e.g. ``config.cookies['bing'] = cookie``).
    Also ``providers`` (engine provider sections, e.g. ``{'openai': {'base_url': ...}}``),
    ``aliases``, ``options`` (``temperature``, ``max_tokens``, ...) and ``store`` (where named
    chats are kept: ``'none'``, ``'sqlite:PATH'`` or ``'postgres://...'``; default: the
    ``OY3O_STORE`` variable, else the SQLite file the ``oy3o`` command uses).

    A per-call ``Config`` overrides the global :data:`config` field by field; listeners add up.
    """

    def __init__(self, data: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__()
        for key in _MAPS:
            self[key] = {}
        for source in (data or {}, kwargs):
            for key, value in source.items():
                self[key] = dict(value) if key in _MAPS and value is not None else value

    def __getattr__(self, name: str) -> Any:
        if name in _MAPS or name in _SCALARS:
            return self.get(name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


#: The global default configuration, read live by every call.
config = Config()


def effective(*layers: Optional[Mapping[str, Any]]) -> Config:
    """Later layers override earlier ones field by field; maps merge; listeners add up."""
    out = Config()
    default_listeners: List[Listeners] = []
    model_listeners: Dict[str, List[Listeners]] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if value is None:
                continue
            if key == "listener":
                default_listeners.append(value)
            elif key == "listeners":
                for model, listeners in value.items():
                    model_listeners.setdefault(model, []).append(listeners)
            elif key in _MAPS:
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    out["listener"] = default_listeners
    out["listeners"] = model_listeners
    return out


def _proxy_url(proxy: Any) -> Optional[str]:
    """A URL, or an httpx-style ``{'http://': url, 'https://': url}`` map."""
    if proxy is None or isinstance(proxy, str):
        return proxy
    if isinstance(proxy, Mapping):
        for key in ("https://", "all://", "http://", "https", "http"):
            if proxy.get(key):
                return str(proxy[key])
        for value in proxy.values():
            if value:
                return str(value)
        return None
    raise TypeError(f"proxy must be a URL or a {{'http://': url}} map, not {type(proxy).__name__}")


def _credential(cookie: Any) -> Optional[str]:
    """A key stays a string; a cookie export (list of dicts or a dict) becomes JSON text."""
    if cookie is None or isinstance(cookie, str):
        return cookie
    return json.dumps(cookie, ensure_ascii=False)


def engine_json(cfg: Mapping[str, Any]) -> str:
    """The engine's JSON config form for ``cfg`` (listeners stay in Python)."""
    out: Dict[str, Any] = {}
    for key in ("model", "context", "store"):
        if cfg.get(key) is not None:
            out[key] = cfg[key]
    if cfg.get("cookie") is not None:
        out["cookie"] = _credential(cfg["cookie"])
    if cfg.get("proxy") is not None:
        out["proxy"] = _proxy_url(cfg["proxy"])
    if cfg.get("cookies"):
        out["cookies"] = {k: _credential(v) for k, v in cfg["cookies"].items() if v is not None}
    if cfg.get("proxies"):
        proxies = {k: _proxy_url(v) for k, v in cfg["proxies"].items()}
        out["proxies"] = {k: v for k, v in proxies.items() if v is not None}
    for key in ("contexts", "providers", "aliases"):
        if cfg.get(key):
            out[key] = dict(cfg[key])
    if cfg.get("options"):
        out["options"] = dict(cfg["options"])
    return json.dumps(out, ensure_ascii=False)


def _flatten(listeners: Listeners) -> Dict[str, List[Listener]]:
    out: Dict[str, List[Listener]] = {}
    for name, value in listeners.items():
        if value is None:
            continue
        callables = [value] if callable(value) else list(value)
        out.setdefault(name, []).extend(callables)
    return out


def listeners_for(cfg: Mapping[str, Any], model: str) -> Dict[str, List[Listener]]:
    """Every listener that applies to ``model``: defaults, then per-model (by the full reference,
    then by provider name), in order."""
    out: Dict[str, List[Listener]] = {}

    def add(listeners: Listeners) -> None:
        for name, callables in _flatten(listeners).items():
            out.setdefault(name, []).extend(callables)

    for listeners in cfg.get("listener") or []:
        add(listeners)
    per_model = cfg.get("listeners") or {}
    provider = model.split(":", 1)[0]
    keys = [model] if model == provider else [model, provider]
    asked = cfg.get("model")
    if asked and asked not in keys:
        keys.insert(0, asked)
    for key in keys:
        for listeners in per_model.get(key, []):
            add(listeners)
    return out
