"""Configuration in the original library's shape, and its translation for the engine.

The engine merges the layers (the global :data:`config`, then per-call ones) field by field,
resolves models and reads the store setting; what stays here is the original's dict shape and
the listeners, which run in Python.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ._events import Event

Listener = Callable[[Event], Any]
Listeners = Mapping[str, Union[Listener, Iterable[Listener]]]

__all__ = ["Config", "config", "Listener", "Listeners", "engine_layers", "listener_layers", "validate_listeners"]

_MAPS = ("cookies", "contexts", "proxies", "listeners", "providers", "aliases", "mcp")
_SCALARS = ("model", "context", "cookie", "proxy", "listener", "options", "store", "task_concurrency", "attachments")
_KEYS = _MAPS + _SCALARS
_SECRETS = ("cookie", "cookies")


def _check_key(key: str) -> None:
    if key not in _KEYS:
        close = difflib.get_close_matches(key, _KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(_KEYS)}"
        raise AttributeError(f"Config has no key {key!r}{hint}")


class Config(dict):
    """A configuration: a dict with attribute access.

    Keys: ``model``, ``context``, ``cookie``, ``proxy``, ``listener`` (listeners for every
    model), and the per-model maps ``cookies``, ``contexts``, ``proxies``, ``listeners``
    (keyed by model reference, alias or provider name, e.g. ``config.cookies['bing'] = cookie``).
    Also ``providers`` (engine provider sections, e.g. ``{'openai': {'base_url': ...}}``),
    ``aliases``, ``mcp`` (MCP servers by name, as a config file's ``[mcp.NAME]`` sections:
    ``{'time': {'command': ['mcp-server-time']}}`` or ``{'docs': {'url': 'http://…/mcp'}}``;
    name them in ``tools=``), ``options`` (``temperature``, ``max_tokens``, ...), ``task_concurrency`` and
    ``store`` (where named chats are kept: ``'none'``, ``'sqlite:PATH'`` or
    ``'postgres://...'``; the ``OY3O_STORE`` variable comes first, as for the ``oy3o``
    command; default: the SQLite file the ``oy3o`` command uses) and ``attachments`` (size
    limits in bytes: ``{'max_image_bytes': ..., 'max_pdf_bytes': ..., 'max_text_bytes': ...,
    'max_audio_bytes': ...}``).

    A per-call ``Config`` overrides the global :data:`config` field by field (maps key by key,
    ``options`` and provider sections field by field); the most specific setting wins: a
    ``context``, ``cookie`` or ``proxy`` given with the call beats the global per-model maps.
    ``proxy=''`` means no proxy (requests go direct, even over ``HTTPS_PROXY``), so a call can
    turn a global proxy off; ``None`` leaves the key unset.
    Listeners add up. A misspelled key is an ``AttributeError``; ``repr`` hides credentials.
    """

    def __init__(self, data: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__()
        for key in _MAPS:
            dict.__setitem__(self, key, {})
        for source in (data or {}, kwargs):
            for key, value in source.items():
                self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        _check_key(key)
        if key in _MAPS:
            if value is None:
                value = {}
            elif not isinstance(value, Mapping):
                raise TypeError(f"Config.{key} must be a mapping (e.g. {{'openai': ...}}), not {type(value).__name__}")
            else:
                value = dict(value)
        dict.__setitem__(self, key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __getattr__(self, name: str) -> Any:
        if name in _KEYS:
            return self.get(name)
        _check_key(name)
        raise AttributeError(name)  # pragma: no cover - _check_key raised

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __repr__(self) -> str:
        shown = {}
        for key, value in self.items():
            if key == "cookie" and value is not None:
                value = "***"
            elif key == "cookies" and value:
                value = {k: "***" for k in value}
            elif key == "providers" and value:
                value = {k: ({**v, "api_key": "***"} if isinstance(v, Mapping) and "api_key" in v else v) for k, v in value.items()}
            shown[key] = value
        return f"Config({shown!r})"


#: The global default configuration, read live by every call.
config = Config()


def _proxy_url(proxy: Any) -> Optional[str]:
    """A URL, or an httpx-style ``{'http://': url, 'https://': url}`` map."""
    if proxy is None or isinstance(proxy, str):
        return proxy
    if isinstance(proxy, Mapping):
        for key in ("https://", "all://", "http://", "https", "http"):
            if proxy.get(key):
                return _proxy_url(proxy[key])
        for value in proxy.values():
            if value:
                return _proxy_url(value)
        return None
    raise TypeError(f"a proxy must be a URL or a {{'http://': url}} map, not {type(proxy).__name__}")


def _credential(cookie: Any) -> Optional[str]:
    """A key stays a string; a cookie export (list of dicts or a dict) becomes JSON text."""
    if cookie is None or isinstance(cookie, str):
        return cookie
    if isinstance(cookie, (Mapping, list, tuple)):
        return json.dumps(cookie, ensure_ascii=False)
    raise TypeError(f"a cookie must be a key, a {{name: value}} map or a cookie export list, not {type(cookie).__name__}")


def _engine_json(layer: Mapping[str, Any]) -> str:
    """One layer in the engine's JSON config form (listeners stay in Python; unset keys out)."""
    out: Dict[str, Any] = {}
    for key in ("model", "context", "store", "task_concurrency"):
        if layer.get(key) is not None:
            out[key] = layer[key]
    if layer.get("cookie") is not None:
        out["cookie"] = _credential(layer["cookie"])
    if layer.get("proxy") is not None:
        out["proxy"] = _proxy_url(layer["proxy"])
    cookies = {k: _credential(v) for k, v in (layer.get("cookies") or {}).items()}
    proxies = {k: _proxy_url(v) for k, v in (layer.get("proxies") or {}).items()}
    for key, value in (("cookies", cookies), ("proxies", proxies)):
        value = {k: v for k, v in value.items() if v is not None}
        if value:
            out[key] = value
    for key in ("contexts", "providers", "aliases", "options", "mcp", "attachments"):
        value = layer.get(key)
        if value:
            if not isinstance(value, Mapping):
                raise TypeError(f"Config.{key} must be a mapping, not {type(value).__name__}")
            out[key] = {k: v for k, v in value.items() if v is not None}
    return json.dumps(out, ensure_ascii=False)


def engine_layers(layers: Sequence[Optional[Mapping[str, Any]]]) -> List[str]:
    """The layers in the engine's JSON form, global first; the engine merges them."""
    return [_engine_json(layer) for layer in layers if layer]


def _flatten(listeners: Any, where: str) -> Dict[str, List[Listener]]:
    if not isinstance(listeners, Mapping):
        raise TypeError(f"{where} must be a {{event: callable or [callables]}} map, not {type(listeners).__name__}")
    out: Dict[str, List[Listener]] = {}
    for name, value in listeners.items():
        if value is None:
            continue
        callables = [value] if callable(value) else value
        if isinstance(callables, (str, bytes)) or not isinstance(callables, Iterable):
            raise TypeError(f"{where}[{name!r}] must be a callable or a list of callables, not {type(value).__name__}")
        callables = list(callables)
        for c in callables:
            if not callable(c):
                raise TypeError(f"{where}[{name!r}] holds {c!r}, which is not callable")
        out.setdefault(name, []).extend(callables)
    return out


class ListenerLayers:
    """The listeners of every layer: those for every model, and those per model name."""

    def __init__(self) -> None:
        self.default: Dict[str, List[Listener]] = {}
        self.per_model: Dict[str, Dict[str, List[Listener]]] = {}

    @staticmethod
    def _add(into: Dict[str, List[Listener]], more: Dict[str, List[Listener]]) -> None:
        for name, callables in more.items():
            into.setdefault(name, []).extend(callables)

    def for_keys(self, keys: Sequence[str]) -> Dict[str, List[Listener]]:
        """Listeners for a model whose lookup names (most specific first, from the engine) are
        ``keys``: every-model ones, then those of the first name that has any, as the engine
        picks per-model settings."""
        out: Dict[str, List[Listener]] = {}
        self._add(out, self.default)
        for key in keys:
            if key in self.per_model:
                self._add(out, self.per_model[key])
                break
        return out

    def names(self) -> Iterable[str]:
        yield from self.default
        for listeners in self.per_model.values():
            yield from listeners


def listener_layers(layers: Sequence[Optional[Mapping[str, Any]]]) -> ListenerLayers:
    """Collects (and checks) the listeners of ``layers``, global first."""
    out = ListenerLayers()
    for layer in layers:
        if not layer:
            continue
        if layer.get("listener") is not None:
            ListenerLayers._add(out.default, _flatten(layer["listener"], "listener"))
        per_model = layer.get("listeners") or {}
        for model, listeners in per_model.items():
            if listeners is None:
                continue
            ListenerLayers._add(out.per_model.setdefault(model, {}), _flatten(listeners, f"listeners[{model!r}]"))
    return out


def validate_listeners(listeners: ListenerLayers, known: Iterable[str]) -> None:
    """A misspelled event name is a ``ValueError('Invalid event')``, as in the original."""
    allowed = set(known) | {"*"}
    for name in listeners.names():
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Invalid event {name!r}{hint}")
