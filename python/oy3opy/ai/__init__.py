"""Talk to AI models: chats with context, one-shot prompts, parallel tasks and task chains.

The names and call shapes are those of the original ``oy3opy.ai`` library; the work is done by
the oy3o Rust engine. Every stream works with both ``for`` and ``async for``; breaking out of a
loop, ``close()``/``aclose()`` or cancelling the asyncio task stops the upstream request.

>>> from oy3opy.ai import Events
>>> 'result' in Events('openai')
True
"""

from __future__ import annotations

import atexit
import json
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import _native
from ._config import Config, Listener, Listeners, config, engine_layers, listener_layers, validate_listeners
from ._events import FACE_EVENTS, TASK_EVENTS, TOOL_EVENTS, Event
from ._stream import Dispatcher, ItemStream, TextStream
from .tools import Tool, Tools, resolve as _resolve_tools
from .errors import (
    AuthError,
    BadRequestError,
    CancelledError,
    ConfigError,
    Error,
    NetworkError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    TimeoutError,
)

# A local model still answering when the interpreter exits would crash it as the process tears
# llama.cpp down: stop it first.
atexit.register(_native.unload_local_models)
# MCP servers started for `tools=["time"]` are kept for the whole program; stop them with it.
atexit.register(_native.close_mcp_servers)

# `TimeoutError` is importable by name but left out of `*`: it would shadow the builtin (it
# is a subclass of it, so `except TimeoutError` catches both either way).
__all__ = [
    "Chat",
    "Config",
    "Event",
    "Events",
    "Tool",
    "events",
    "config",
    "exec",
    "exec_once",
    "execTasks",
    "execTasks_once",
    "execTasks_async",
    "execTasksChain",
    "execTasksChain_once",
    "execTasksChain_async",
    "exec_tasks",
    "exec_tasks_once",
    "exec_tasks_async",
    "exec_tasks_chain",
    "exec_tasks_chain_once",
    "exec_tasks_chain_async",
    "Error",
    "AuthError",
    "RateLimitError",
    "NetworkError",
    "BadRequestError",
    "ProviderError",
    "CancelledError",
    "ConfigError",
    "NotFoundError",
]

_TASK_KEYS = ("model", "prompt", "context", "name", "temperature", "max_tokens", "timeout", "tools")

Pair = Tuple[Mapping[str, Any], Optional[str]]


def Events(model: str) -> List[str]:  # noqa: N802 - the original name
    """The event names ``model``'s provider can emit, with those of task lists and chains,
    e.g. to build ``dict.fromkeys(Events('openai'), [print])``."""
    names = list(_native.events(model))
    return names + [n for n in TASK_EVENTS + FACE_EVENTS + TOOL_EVENTS if n not in names]


#: The same as :func:`Events`.
events = Events


def _known_events() -> List[str]:
    return list(_native.event_names()) + list(TASK_EVENTS + FACE_EVENTS + TOOL_EVENTS)


def _pick(config: Optional[Mapping[str, Any]], _config: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """``config=`` or the original's ``_config=`` keyword."""
    if config is not None and _config is not None:
        raise TypeError("pass config= or _config=, not both")
    return config if config is not None else _config


class _Call:
    """A call's config layers (the global config first), as the engine and the listeners see
    them; listeners are checked before anything is sent."""

    def __init__(self, *layers: Optional[Mapping[str, Any]]) -> None:
        for layer in layers:
            if layer is not None and not isinstance(layer, Mapping):
                raise TypeError(f"config must be a Config or a dict, not {type(layer).__name__}")
        self.listeners = listener_layers(layers)
        validate_listeners(self.listeners, _known_events())
        self.engine = engine_layers(layers)
        self._keys: Dict[Optional[str], List[str]] = {}

    def keys(self, model: Optional[str]) -> List[str]:
        if model not in self._keys:
            self._keys[model] = list(_native.lookup_keys(model, self.engine))
        return self._keys[model]

    def listeners_for(self, model: Optional[str]) -> Dict[str, List[Listener]]:
        """The listeners of ``model`` (as asked), looked up under the names the engine uses."""
        return self.listeners.for_keys(self.keys(model))


class Chat:
    """A conversation with one model, with context and history.

    ``Chat(model, cookie=None, listeners=None, proxy=None)``: ``cookie`` is a key or a browser
    cookie export, ``listeners`` a ``{event: callable or [callables]}`` map, ``proxy`` a URL,
    an httpx-style map, or ``''`` for none (over the global config's proxies). Use ``await chat.update(context)``, ``chat.send(prompt)`` (a stream),
    ``await chat.send_once(prompt)``, ``await chat.close()``. ``context=`` sets the context
    from the start; it beats any context of the config.

    ``name='x'`` keeps the chat in the store (``OY3O_STORE``, else the config's ``store``, else
    the SQLite file the ``oy3o`` command uses) and resumes it when it exists: its model (unless
    ``model`` is given), context, history (see :attr:`history`) and the provider's own
    conversation (``bing``), so a chat begun with ``oy3o --chat x`` continues here and the other
    way round. Two ``Chat`` objects on one name in a process share one conversation.

    ``tools=[fn, ...]`` gives the model Python functions to call (see :mod:`oy3opy.ai.tools`
    for how hints and docstrings become the tool's definition): the engine runs the loop, each
    function runs on the thread reading the answer (an ``async`` one is awaited there when the
    answer is read with ``async for``/``await``) and the model reads what it returns (an
    exception as an error result). The ``tool_call`` and ``tool_result`` events say what ran.
    A function that cannot be described is a ``TypeError``/``ValueError`` here.

    A string in ``tools`` names MCP tools of the config (its ``mcp`` sections): a server
    (``'time'``: all its tools) or one tool (``'time.get_current_time'``); the engine runs them,
    with the same events. Servers start on first use and are kept until the program exits. An
    unknown name is a :class:`NotFoundError` here; a function named like an MCP tool
    (``time__get_current_time``) a :class:`ConfigError`.

    >>> def add(a: int, b: int) -> int:
    ...     "Adds two numbers."
    ...     return a + b
    >>> chat = Chat('openai:gpt-4o-mini', tools=[add])  # doctest: +SKIP
    >>> await chat.send_once('What is 2 + 3?')  # doctest: +SKIP
    'It is 5.'

    Request controls, for every turn here or one ``send``/``exec`` (which win):
    ``reasoning='low'|'medium'|'high'``; ``schema=`` a JSON Schema dict or a class with
    ``model_json_schema()`` (pydantic): the answer is JSON following it, validated, asked for
    once more if it does not, else :class:`ProviderError` naming the first failing path;
    ``search=True`` (the provider's web search tool); ``stop='END'`` or a list;
    ``extra_body={...}`` merged into the provider's request body. A control the model cannot
    take, or a bad value, is a :class:`BadRequestError` before anything is sent.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        cookie: Any = None,
        listeners: Optional[Listeners] = None,
        proxy: Any = None,
        *,
        context: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        name: Optional[str] = None,
        tools: Optional[Sequence[Any]] = None,
        reasoning: Optional[str] = None,
        schema: Any = None,
        search: Optional[bool] = None,
        stop: Any = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        _config: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._controls = _controls(reasoning, schema, search, stop, extra_body)
        self._tools = _resolve_tools(tools)
        call = Config(cookie=cookie, proxy=proxy, listener=listeners)
        layers = _Call(globals()["config"], _pick(config, _config), call)
        self._native = _native.open_chat(model, layers.engine, name, context)
        if self._tools is not None and self._tools.mcp:
            self._native.check_mcp_tools(self._tools.mcp)
        self.model: str = self._native.model
        keys = layers.keys(model)
        if self.model not in keys:  # resumed on its stored model
            keys = layers.keys(self.model)
        self._dispatcher = Dispatcher(layers.listeners.for_keys(keys), self.model)
        if name is not None and not self._native.stored:
            warnings.warn(
                f"chat {name!r} is not kept: the store is 'none' (OY3O_STORE or the config's "
                "store); it ends with this program",
                RuntimeWarning,
                stacklevel=2,
            )
        self._dispatcher.emit_sync("create", {"model": self.model})

    async def update(self, context: str) -> None:
        """Sets the context (system prompt) for the next turns."""
        self._native.update(context)
        await self._dispatcher.emit("update", {"context": context})

    def send(
        self,
        prompt: str,
        *,
        tools: Optional[Sequence[Any]] = None,
        attachments: Optional[Sequence[Any]] = None,
        reasoning: Optional[str] = None,
        schema: Any = None,
        search: Optional[bool] = None,
        stop: Any = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> TextStream:
        """Sends a prompt; iterate the result for the answer's chunks. The turn takes its place
        now: turns run in the order they were sent. Breaking out of the loop (or ``close()``)
        ends the turn as cancelled; it is not in the history. ``tools`` replaces the chat's
        tools for this turn (``[]``: none). ``attachments``: images, PDFs, text documents or
        sounds sent with the prompt, each a path (``str`` or ``os.PathLike``), an ``http(s)``
        URL, ``bytes``, ``(bytes, mime)``, or a dict ``{"path" | "url" | "data": ..., "mime"?,
        "name"?}``; a bad one raises :class:`BadRequestError` (or :class:`NotFoundError` for a
        missing file) naming it, and nothing is sent. The request controls (see :class:`Chat`)
        override the chat's for this turn."""
        turn_tools = self._tools if tools is None else _resolve_tools(tools)
        controls = {**self._controls, **_controls(reasoning, schema, search, stop, extra_body)}
        native = self._native.send(
            prompt,
            _tools_json(turn_tools),
            _mcp_names(turn_tools),
            _attachments(attachments),
            controls=_controls_json(controls),
        )
        return TextStream(native, self._dispatcher, _functions(turn_tools))

    async def send_once(
        self,
        prompt: str,
        *,
        tools: Optional[Sequence[Any]] = None,
        attachments: Optional[Sequence[Any]] = None,
        **controls: Any,
    ) -> str:
        """Sends a prompt and returns the whole answer (with a ``schema``: the JSON text)."""
        return await self.send(prompt, tools=tools, attachments=attachments, **controls).atext()

    @property
    def history(self) -> List[Dict[str, str]]:
        """The conversation so far (turns answered completely), as ``[{'role', 'content'}]``;
        the same whether live or resumed in another process."""
        return [{"role": role, "content": content} for role, content in self._native.history()]

    async def close(self) -> None:
        """Ends the chat: later ``send``/``update`` raise :class:`ConfigError`."""
        self._native.close()

    def __enter__(self) -> "Chat":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._native.close()

    async def __aenter__(self) -> "Chat":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._native.close()


def _controls(reasoning: Any, schema: Any, search: Any, stop: Any, extra_body: Any) -> Dict[str, Any]:
    """The request controls given (``None``: not given), checked by the engine when sent. A
    ``schema`` class with ``model_json_schema()`` (pydantic) gives its schema and name."""
    out: Dict[str, Any] = {}
    if reasoning is not None:
        out["reasoning"] = reasoning
    if schema is not None:
        name = ""
        if hasattr(schema, "model_json_schema"):
            name = getattr(schema, "__name__", "")
            schema = schema.model_json_schema()
        if not isinstance(schema, Mapping):
            raise TypeError(f"schema must be a JSON Schema dict or a class with model_json_schema(), not {type(schema).__name__}")
        out["schema"] = {"name": name or str(schema.get("title", "") or ""), "schema": dict(schema)}
    if search is not None:
        out["search"] = search
    if stop is not None:
        out["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if extra_body is not None:
        out["extra_body"] = extra_body
    return out


def _controls_json(controls: Mapping[str, Any]) -> Optional[str]:
    """The controls for the engine; ``None`` when there are none."""
    if not controls:
        return None
    try:
        return json.dumps(controls, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"request controls must be JSON values: {e}") from None


def _tools_json(tools: Optional[Tools]) -> Optional[str]:
    """The functions' definitions for the engine; ``None`` when there are none."""
    return json.dumps([t.spec() for t in tools.functions], ensure_ascii=False) if tools and tools.functions else None


def _attachment(i: int, item: Any) -> Tuple[str, Any, Optional[str], Optional[str]]:
    """One attachment as the engine's loader takes it: ``(kind, value, mime, name)``."""
    mime: Optional[str] = None
    name: Optional[str] = None
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str):
        item, mime = item
    if isinstance(item, Mapping):
        unknown = set(item) - {"path", "url", "data", "mime", "name"}
        given = [k for k in ("path", "url", "data") if item.get(k) is not None]
        if unknown or len(given) != 1:
            raise BadRequestError(
                f"attachments[{i}]: a dict attachment has exactly one of 'path', 'url' or 'data' "
                "(bytes), and optionally 'mime' and 'name'"
            )
        mime, name = item.get("mime"), item.get("name")
        item = item[given[0]]
        if given[0] == "url":
            return ("url", str(item), mime, name)
        if given[0] == "path":
            return ("path", os.fspath(item), mime, name)
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise BadRequestError(f"attachments[{i}]: 'data' must be bytes, not {type(item).__name__}")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(item), mime, name)
    if isinstance(item, str) and item[:8].lower().startswith(("http://", "https://")):
        return ("url", item, mime, name)
    if isinstance(item, (str, os.PathLike)):
        return ("path", os.fspath(item), mime, name)
    raise BadRequestError(
        f"attachments[{i}]: cannot attach a {type(item).__name__}; give a path, an http(s) URL, "
        "bytes, (bytes, mime) or a dict"
    )


def _attachments(items: Optional[Sequence[Any]]) -> List[Tuple[str, Any, Optional[str], Optional[str]]]:
    """``attachments=[...]`` for the engine, which loads and checks them."""
    if items is None:
        return []
    if isinstance(items, (str, bytes, os.PathLike, Mapping)):
        items = [items]
    return [_attachment(i, item) for i, item in enumerate(items)]


def _mcp_names(tools: Optional[Tools]) -> List[str]:
    """The MCP servers and tools named, for the engine to look up."""
    return list(tools.mcp) if tools else []


def _functions(tools: Optional[Tools]) -> Optional[List[Tool]]:
    """The functions the reader runs."""
    return tools.functions if tools else None


def exec(  # noqa: A001 - the original name
    prompt: str,
    context: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    *,
    tools: Optional[Sequence[Any]] = None,
    attachments: Optional[Sequence[Any]] = None,
    reasoning: Optional[str] = None,
    schema: Any = None,
    search: Optional[bool] = None,
    stop: Any = None,
    extra_body: Optional[Mapping[str, Any]] = None,
    _config: Optional[Mapping[str, Any]] = None,
) -> TextStream:
    """One prompt, no history: a stream of the answer's chunks. A model that cannot be used
    (unknown, no key) raises here, before iterating. ``tools``, ``attachments`` and the request
    controls as for
    :class:`Chat`."""
    resolved_tools = _resolve_tools(tools)
    controls = _controls_json(_controls(reasoning, schema, search, stop, extra_body))
    layers = _Call(globals()["config"], _pick(config, _config))
    native, resolved = _native.exec(
        prompt,
        context,
        model,
        layers.engine,
        _tools_json(resolved_tools),
        _mcp_names(resolved_tools),
        _attachments(attachments),
        controls=controls,
    )
    return TextStream(native, Dispatcher(layers.listeners_for(model), resolved), _functions(resolved_tools))


async def exec_once(
    prompt: str,
    context: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    *,
    tools: Optional[Sequence[Any]] = None,
    attachments: Optional[Sequence[Any]] = None,
    _config: Optional[Mapping[str, Any]] = None,
    **controls: Any,
) -> str:
    """One prompt, no history: the whole answer. Request controls as for :class:`Chat`."""
    return await exec(
        prompt, context, model, config, tools=tools, attachments=attachments, _config=_config, **controls
    ).atext()


def _engine_tasks(tasks: Sequence[Any], where: str = "task") -> List[Dict[str, Any]]:
    out = []
    for i, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise TypeError(f"{where} {i} must be a dict like {{'model': ..., 'prompt': ...}}, not {type(task).__name__}")
        if not isinstance(task.get("prompt"), str):
            got = "no 'prompt'" if "prompt" not in task else f"a {type(task['prompt']).__name__} 'prompt'"
            raise TypeError(f"{where} {i} has {got}; give it a 'prompt' string")
        for key in ("model", "context", "name"):
            if task.get(key) is not None and not isinstance(task[key], str):
                raise TypeError(f"{where} {i}: '{key}' must be a string, not {type(task[key]).__name__}")
        names = task.get("tools")
        if names is not None and (
            isinstance(names, str) or not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names)
        ):
            raise TypeError(
                f"{where} {i}: 'tools' must be a list of MCP server or tool names (['time']); "
                "a task's tools are run by the engine, so Python functions cannot be given here"
            )
        out.append({k: task[k] for k in _TASK_KEYS if task.get(k) is not None})
    return out


def _task_dispatcher(layers: _Call) -> Dispatcher:
    """Events of one task go to its model's listeners; those of no task (a chain's stages) to
    the listeners for every model."""
    return Dispatcher(layers.listeners.for_keys([]), None, layers.listeners_for)


def execTasks(  # noqa: N802 - the original name
    tasks: Sequence[Mapping[str, Any]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    _config: Optional[Mapping[str, Any]] = None,
) -> ItemStream[Pair]:
    """Runs tasks (``{'model', 'prompt', 'context'?, 'name'?, 'tools'?}``) concurrently and
    yields ``(task, response)`` in completion order; a failed task yields ``(task, None)`` and
    fires ``error``. ``tools`` names MCP servers or tools of the config (``['time']``), looked
    up before any task runs (an unknown one is a :class:`NotFoundError`). The task dicts come back as they were passed. Each task's events go to its
    model's listeners and carry its ``model`` and ``task`` index."""
    tasks = list(tasks)
    engine_tasks = _engine_tasks(tasks)
    layers = _Call(globals()["config"], _pick(config, _config))
    native = _native.exec_tasks(json.dumps(engine_tasks), layers.engine)

    def convert(kind: str, result: Dict[str, Any]) -> Pair:
        return tasks[result["index"]], result.get("response")

    return ItemStream(native, _task_dispatcher(layers), convert)


def execTasks_once(  # noqa: N802 - the original name
    tasks: Sequence[Mapping[str, Any]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    _config: Optional[Mapping[str, Any]] = None,
) -> List[Pair]:
    """Runs tasks and returns every ``(task, response)`` in completion order (blocking; in
    ``async`` code use :func:`execTasks_async`)."""
    return list(execTasks(tasks, config, _config=_config))


async def execTasks_async(  # noqa: N802 - beside the original names
    tasks: Sequence[Mapping[str, Any]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    _config: Optional[Mapping[str, Any]] = None,
) -> List[Pair]:
    """:func:`execTasks_once` as an awaitable: the event loop keeps running meanwhile."""
    return [pair async for pair in execTasks(tasks, config, _config=_config)]


def execTasksChain(  # noqa: N802 - the original name
    chain: Sequence[Sequence[Mapping[str, Any]]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    _config: Optional[Mapping[str, Any]] = None,
) -> ItemStream[List[Pair]]:
    """Runs stages in order, the tasks of each in parallel; each stage's answers become the
    context of the next. Yields each stage as a list of ``(task, response)`` in task order.
    A task may name MCP ``tools`` as in :func:`execTasks`."""
    stages = [list(stage) for stage in chain]
    engine_stages = [_engine_tasks(s, f"stage {n} task") for n, s in enumerate(stages)]
    layers = _Call(globals()["config"], _pick(config, _config))
    native = _native.exec_tasks_chain(json.dumps(engine_stages), layers.engine)

    def convert(kind: str, stage: Dict[str, Any]) -> List[Pair]:
        given = stages[stage["index"]]
        return [(given[r["index"]], r.get("response")) for r in stage["results"]]

    return ItemStream(native, _task_dispatcher(layers), convert)


def execTasksChain_once(  # noqa: N802 - the original name
    chain: Sequence[Sequence[Mapping[str, Any]]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    _config: Optional[Mapping[str, Any]] = None,
) -> List[List[Pair]]:
    """Runs a chain and returns every stage (blocking; in ``async`` code use
    :func:`execTasksChain_async`)."""
    return list(execTasksChain(chain, config, _config=_config))


async def execTasksChain_async(  # noqa: N802 - beside the original names
    chain: Sequence[Sequence[Mapping[str, Any]]],
    config: Optional[Mapping[str, Any]] = None,
    *,
    _config: Optional[Mapping[str, Any]] = None,
) -> List[List[Pair]]:
    """:func:`execTasksChain_once` as an awaitable: the event loop keeps running meanwhile."""
    return [stage async for stage in execTasksChain(chain, config, _config=_config)]


exec_tasks = execTasks
exec_tasks_once = execTasks_once
exec_tasks_async = execTasks_async
exec_tasks_chain = execTasksChain
exec_tasks_chain_once = execTasksChain_once
exec_tasks_chain_async = execTasksChain_async
