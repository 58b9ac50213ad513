"""Streams over the native engine: usable with both ``for`` and ``async for``."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import warnings
from collections import deque
from typing import Any, AsyncIterator, Callable, Deque, Dict, Generic, Iterator, List, Optional, Tuple, TypeVar

from ._events import Event
from .errors import error_for
from .tools import Tool, failure, output

__all__ = ["Dispatcher", "TextStream", "ItemStream"]

T = TypeVar("T")

ListenerMap = Dict[str, List[Callable[..., Any]]]


class Dispatcher:
    """Calls listeners for events, on the consumer's thread, in stream order. A listener that
    raises is reported with a warning and an ``error`` event; it never stops the stream.

    ``listeners`` are those of the stream's model; events of one task of a task list or chain
    go to ``for_model(task's model)``'s listeners instead and say which task they belong to."""

    def __init__(
        self,
        listeners: ListenerMap,
        model: Optional[str] = None,
        for_model: Optional[Callable[[Optional[str]], ListenerMap]] = None,
    ) -> None:
        self.listeners = listeners
        self.model = model
        self.for_model = for_model

    def _targets(self, name: str, listeners: Optional[ListenerMap] = None) -> List[Callable[..., Any]]:
        listeners = self.listeners if listeners is None else listeners
        return listeners.get(name, []) + listeners.get("*", [])

    def payload(self, name: str, message: Any) -> Event:
        return {"event": name, "message": message, "model": self.model}

    def _task(self, name: str, body: Dict[str, Any]) -> Tuple[Event, ListenerMap]:
        model = body.get("reference") or body.get("model")
        event: Event = {"event": name, "message": body.get("message"), "model": model, "task": body["index"]}
        if body.get("stage") is not None:
            event["stage"] = body["stage"]
        listeners = self.for_model(body.get("model")) if self.for_model else self.listeners
        return event, listeners

    def _failed(self, name: str, listener: Any, exc: BaseException) -> None:
        warnings.warn(f"oy3opy listener {listener!r} for {name!r} raised {exc!r}", RuntimeWarning, stacklevel=3)
        if name != "error":
            self.emit_sync("error", {"code": "listener", "message": f"listener for {name} raised {exc!r}"})

    def _call_sync(self, event: Event, listeners: List[Callable[..., Any]]) -> None:
        for listener in listeners:
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    _run_now(result)
            except Exception as exc:  # noqa: BLE001 - reported, never propagated
                self._failed(event["event"], listener, exc)

    async def _call(self, event: Event, listeners: List[Callable[..., Any]]) -> None:
        for listener in listeners:
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - reported, never propagated
                self._failed(event["event"], listener, exc)

    def emit_sync(self, name: str, message: Any) -> None:
        """Calls the listeners; a coroutine listener runs to completion before this returns."""
        self._call_sync(self.payload(name, message), self._targets(name))

    async def emit(self, name: str, message: Any) -> None:
        """Calls the listeners, awaiting coroutine listeners."""
        await self._call(self.payload(name, message), self._targets(name))

    def emit_task_sync(self, name: str, body: Dict[str, Any]) -> None:
        event, listeners = self._task(name, body)
        self._call_sync(event, self._targets(name, listeners))

    async def emit_task(self, name: str, body: Dict[str, Any]) -> None:
        event, listeners = self._task(name, body)
        await self._call(event, self._targets(name, listeners))


def _run_now(awaitable: Any) -> Any:
    """Runs a coroutine (a listener, an ``async`` tool) to completion from synchronous code and
    gives its value: on a private loop, or, when this thread already runs a loop (sync
    iteration inside ``async def``), on a private loop in a helper thread, so its effects are
    there when the call returns."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    value: List[Any] = []
    failed: List[BaseException] = []

    def run() -> None:
        try:
            value.append(asyncio.run(_await(awaitable)))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            failed.append(exc)

    helper = threading.Thread(target=run, name="oy3opy-coroutine")
    helper.start()
    helper.join()
    if failed:
        raise failed[0]
    return value[0]


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _finished(value: Any) -> Any:
    """A sync caller's value of a call: an ``async`` function's coroutine run to its end."""
    return _run_now(value) if inspect.isawaitable(value) else value


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    try:
        loop.add_reader(fd, ready)
    except (NotImplementedError, RuntimeError):  # loops without add_reader
        await asyncio.sleep(0.001)
        return
    try:
        await future
    finally:
        loop.remove_reader(fd)


class _Loop(Generic[T]):
    """One ``for`` / ``async for`` loop over a stream. The loop holds the only reference: when
    it ends early (``break``, an exception) this object goes at once, and the stream with its
    upstream request is stopped, even while the stream object itself is still referenced."""

    __slots__ = ("_stream",)

    def __init__(self, stream: "_Base[T]") -> None:
        self._stream = stream

    def __iter__(self) -> "_Loop[T]":
        return self

    def __next__(self) -> T:
        return self._stream.__next__()

    def __aiter__(self) -> "_Loop[T]":
        return self

    def __anext__(self) -> Any:
        return self._stream.__anext__()

    def __del__(self) -> None:
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Base(Generic[T]):
    """Takes native items, dispatches events, runs tool calls, queues what the iterator yields."""

    def __init__(self, native: Any, dispatcher: Dispatcher, tools: Optional[List[Tool]] = None) -> None:
        self._native = native
        self._dispatcher = dispatcher
        self._tools: Dict[str, Tool] = {t.name: t for t in tools or []}
        self._ready: Deque[Any] = deque()
        self._pending: Deque[Tuple[str, str, str]] = deque()
        self._ended = False
        self._closed = False

    # -- items -----------------------------------------------------------------------------
    def _value(self, kind: str, a: str, b: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _step_sync(self) -> None:
        """Processes pending items until one yields a value or they run out."""
        while self._pending and not self._ready:
            kind, a, b = self._pending.popleft()
            if kind == "event":
                self._dispatcher.emit_sync(a, json.loads(b))
            elif kind == "task_event":
                self._dispatcher.emit_task_sync(a, json.loads(b))
            elif kind == "tool":
                tool, arguments = self._tool_call(a, b)
                if tool is not None:
                    self._run_tool(a, tool, arguments)
            elif kind == "error":
                self._dispatcher.emit_sync("error", {"code": a, "message": b})
                raise error_for(a, b)
            else:
                self._ready.append(self._value(kind, a, b))

    # -- tools -----------------------------------------------------------------------------
    # The engine waits while a tool runs here, on the consumer's thread: every outcome, an
    # exception included, is answered, so its turn goes on (and a KeyboardInterrupt or a
    # cancellation still propagates after answering).
    def _tool_call(self, ticket: str, body: str) -> Tuple[Optional[Tool], Dict[str, Any]]:
        call = json.loads(body)
        tool = self._tools.get(call["name"])
        if tool is None:
            self._native.answer(int(ticket), f"no Python function is named {call['name']!r}", True)
            return None, {}
        try:
            return tool, tool.arguments(call["arguments"])
        except Exception as exc:  # noqa: BLE001 - the model reads it
            self._native.answer(int(ticket), failure(exc), True)
            return None, {}

    def _run_tool(self, ticket: str, tool: Tool, arguments: Dict[str, Any]) -> None:
        try:
            content, is_error = output(_finished(tool.function(**arguments))), False
        except Exception as exc:  # noqa: BLE001 - the model reads it
            content, is_error = failure(exc), True
        except BaseException as exc:
            self._native.answer(int(ticket), failure(exc), True)
            raise
        self._native.answer(int(ticket), content, is_error)

    async def _run_tool_async(self, ticket: str, tool: Tool, arguments: Dict[str, Any]) -> None:
        try:
            value = tool.function(**arguments)
            content, is_error = output(await value if inspect.isawaitable(value) else value), False
        except Exception as exc:  # noqa: BLE001 - the model reads it
            content, is_error = failure(exc), True
        except BaseException as exc:
            self._native.answer(int(ticket), failure(exc), True)
            raise
        self._native.answer(int(ticket), content, is_error)

    async def _step_async(self) -> None:
        while self._pending and not self._ready:
            kind, a, b = self._pending.popleft()
            if kind == "event":
                await self._dispatcher.emit(a, json.loads(b))
            elif kind == "task_event":
                await self._dispatcher.emit_task(a, json.loads(b))
            elif kind == "tool":
                tool, arguments = self._tool_call(a, b)
                if tool is not None:
                    await self._run_tool_async(a, tool, arguments)
            elif kind == "error":
                await self._dispatcher.emit("error", {"code": a, "message": b})
                raise error_for(a, b)
            else:
                self._ready.append(self._value(kind, a, b))

    # -- sync ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        return _Loop(self)

    def __next__(self) -> T:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._pending:
                self._step_sync()
                continue
            if self._ended or self._closed:
                raise StopIteration
            # Short waits with the GIL released, so Ctrl+C is seen between them.
            items, self._ended = self._native.wait(100)
            self._pending.extend(items)

    # -- async -----------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[T]:
        return _Loop(self)

    async def __anext__(self) -> T:
        try:
            while True:
                if self._ready:
                    return self._ready.popleft()
                if self._pending:
                    await self._step_async()
                    continue
                if self._ended or self._closed:
                    raise StopAsyncIteration
                items, self._ended = self._native.take()
                if not items and not self._ended:
                    await _readable(self._native.fileno())
                    continue
                self._pending.extend(items)
        except asyncio.CancelledError:
            self.close()
            raise

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stops the stream and its upstream request."""
        if not self._closed:
            self._closed = True
            self._native.close()

    async def aclose(self) -> None:
        """Stops the stream and its upstream request."""
        self.close()

    def __enter__(self) -> "_Base[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "_Base[T]":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class TextStream(_Base[str]):
    """An answer: iterate to get text chunks (``for`` or ``async for``). Breaking out of the
    loop stops the answer (a chat turn ends as cancelled and is not in the history)."""

    def _value(self, kind: str, a: str, b: str) -> str:
        return a

    def __next__(self) -> str:
        return super().__next__()

    async def __anext__(self) -> str:
        return await super().__anext__()

    def text(self) -> str:
        """Consumes the rest of the stream (blocking) and returns it."""
        return "".join(self)

    async def atext(self) -> str:
        """Consumes the rest of the stream and returns it."""
        return "".join([chunk async for chunk in self])


class ItemStream(_Base[T]):
    """Task or stage results; ``convert`` turns each native JSON result into what is yielded."""

    def __init__(self, native: Any, dispatcher: Dispatcher, convert: Callable[[str, Dict[str, Any]], T]) -> None:
        super().__init__(native, dispatcher)
        self._convert = convert

    def _value(self, kind: str, a: str, b: str) -> T:
        return self._convert(kind, json.loads(a))
