"""Talk to AI models: chats with context, one-shot prompts, parallel tasks and task chains.

The names and call shapes are those of the original ``oy3opy.ai`` library; the work is done by
the oy3o Rust engine. Every stream works with both ``for`` and ``async for``; breaking out of a
loop, ``close()``/``aclose()`` or cancelling the asyncio task stops the upstream request.

>>> from oy3opy.ai import Events
>>> 'result' in Events('openai')
True
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import _native
from ._config import Config, config, effective, engine_json, listeners_for
from ._stream import Dispatcher, ItemStream, TextStream, raise_native
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

__all__ = [
    "Chat",
    "Config",
    "Events",
    "config",
    "exec",
    "exec_once",
    "execTasks",
    "execTasks_once",
    "execTasksChain",
    "execTasksChain_once",
    "exec_tasks",
    "exec_tasks_once",
    "exec_tasks_chain",
    "exec_tasks_chain_once",
    "Error",
    "AuthError",
    "RateLimitError",
    "TimeoutError",
    "NetworkError",
    "BadRequestError",
    "ProviderError",
    "CancelledError",
    "ConfigError",
    "NotFoundError",
]

_TASK_KEYS = ("model", "prompt", "context", "name", "temperature", "max_tokens", "timeout")


def Events(model: str) -> List[str]:  # noqa: N802 - the original name
    """The event names ``model``'s provider can emit, e.g. to build
    ``dict.fromkeys(Events('openai'), [print])``."""
    try:
        return list(_native.events(model))
    except Exception as exc:  # noqa: BLE001
        raise raise_native(exc) from None


def _resolved_model(cfg: Mapping[str, Any], model: Optional[str]) -> str:
    return model or cfg.get("model") or "local:smollm2"


class Chat:
    """A conversation with one model, with context and history.

    ``Chat(model, cookie=None, listeners=None, proxy=None)``: ``cookie`` is a key or a browser
    cookie export, ``listeners`` a ``{event: callable or [callables]}`` map, ``proxy`` a URL or
    an httpx-style map. Use ``await chat.update(context)``, ``chat.send(prompt)`` (a stream),
    ``await chat.send_once(prompt)``, ``await chat.close()``.

    ``name='x'`` keeps the chat in the store (config key ``store``; default: the SQLite file
    the ``oy3o`` command uses) and resumes it when it exists: its model (unless ``model`` is
    given), context and history (see :attr:`history`) come back, so a chat begun with
    ``oy3o --chat x`` continues here and the other way round.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        cookie: Any = None,
        listeners: Optional[Mapping[str, Any]] = None,
        proxy: Any = None,
        *,
        context: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        name: Optional[str] = None,
    ) -> None:
        call = Config(cookie=cookie, proxy=proxy, listener=listeners, context=context)
        cfg = effective(globals()["config"], config, call)
        try:
            self._native = _native.open_chat(model, engine_json(cfg), name)
        except Exception as exc:  # noqa: BLE001
            raise raise_native(exc) from None
        self.model: str = self._native.model
        self._dispatcher = Dispatcher(listeners_for(cfg, self.model), self.model)
        self._dispatcher.emit_sync("create", {"model": self.model})

    async def update(self, context: str) -> None:
        """Sets the context (system prompt) for the next turns."""
        self._native.update(context)
        await self._dispatcher.emit("update", {"context": context})

    def send(self, prompt: str) -> TextStream:
        """Sends a prompt; iterate the result for the answer's chunks."""
        return TextStream(self._native.send(prompt), self._dispatcher)

    async def send_once(self, prompt: str) -> str:
        """Sends a prompt and returns the whole answer."""
        return await self.send(prompt).atext()

    @property
    def history(self) -> List[Dict[str, str]]:
        """The conversation so far, as ``[{'role', 'content'}, ...]``."""
        return [{"role": role, "content": content} for role, content in self._native.history()]

    async def close(self) -> None:
        """Ends the chat."""
        self._native.close()

    def __enter__(self) -> "Chat":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._native.close()

    async def __aenter__(self) -> "Chat":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._native.close()


def exec(  # noqa: A001 - the original name
    prompt: str,
    context: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
) -> TextStream:
    """One prompt, no history: a stream of the answer's chunks."""
    cfg = effective(globals()["config"], config)
    name = _resolved_model(cfg, model)
    try:
        native = _native.exec(prompt, context, model, engine_json(cfg))
    except Exception as exc:  # noqa: BLE001
        raise raise_native(exc) from None
    return TextStream(native, Dispatcher(listeners_for(cfg, name), name))


async def exec_once(
    prompt: str,
    context: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
) -> str:
    """One prompt, no history: the whole answer."""
    return await exec(prompt, context, model, config).atext()


def _engine_tasks(tasks: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: t[k] for k in _TASK_KEYS if t.get(k) is not None} for t in tasks]


def execTasks(tasks: Sequence[Mapping[str, Any]], config: Optional[Mapping[str, Any]] = None) -> ItemStream:  # noqa: N802
    """Runs tasks (``{'model', 'prompt', 'context'?, 'name'?}``) concurrently and yields
    ``(task, response)`` in completion order; a failed task yields ``(task, None)`` and fires
    ``error``. The task dicts come back as they were passed."""
    import json

    tasks = list(tasks)
    cfg = effective(globals()["config"], config)
    try:
        native = _native.exec_tasks(json.dumps(_engine_tasks(tasks)), engine_json(cfg))
    except Exception as exc:  # noqa: BLE001
        raise raise_native(exc) from None

    def convert(kind: str, result: Dict[str, Any]) -> Tuple[Mapping[str, Any], Optional[str]]:
        return tasks[result["index"]], result.get("response")

    return ItemStream(native, Dispatcher(listeners_for(cfg, _resolved_model(cfg, None))), convert)


def execTasks_once(tasks: Sequence[Mapping[str, Any]], config: Optional[Mapping[str, Any]] = None) -> List[Tuple[Mapping[str, Any], Optional[str]]]:  # noqa: N802
    """Runs tasks and returns every ``(task, response)`` in completion order."""
    return list(execTasks(tasks, config))


def execTasksChain(chain: Sequence[Sequence[Mapping[str, Any]]], config: Optional[Mapping[str, Any]] = None) -> ItemStream:  # noqa: N802
    """Runs stages in order, the tasks of each in parallel; each stage's answers become the
    context of the next. Yields each stage as a list of ``(task, response)`` in task order."""
    import json

    stages = [list(stage) for stage in chain]
    cfg = effective(globals()["config"], config)
    try:
        native = _native.exec_tasks_chain(json.dumps([_engine_tasks(s) for s in stages]), engine_json(cfg))
    except Exception as exc:  # noqa: BLE001
        raise raise_native(exc) from None

    def convert(kind: str, stage: Dict[str, Any]) -> List[Tuple[Mapping[str, Any], Optional[str]]]:
        given = stages[stage["index"]]
        return [(given[r["index"]], r.get("response")) for r in stage["results"]]

    return ItemStream(native, Dispatcher(listeners_for(cfg, _resolved_model(cfg, None))), convert)


def execTasksChain_once(chain: Sequence[Sequence[Mapping[str, Any]]], config: Optional[Mapping[str, Any]] = None) -> List[List[Tuple[Mapping[str, Any], Optional[str]]]]:  # noqa: N802
    """Runs a chain and returns every stage."""
    return list(execTasksChain(chain, config))


exec_tasks = execTasks
exec_tasks_once = execTasks_once
exec_tasks_chain = execTasksChain
exec_tasks_chain_once = execTasksChain_once
