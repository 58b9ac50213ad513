"""Streams over the native engine: usable with both ``for`` and ``async for``."""

from __future__ import annotations

import asyncio
import inspect
import json
import warnings
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .errors import Error, error_for

__all__ = ["Dispatcher", "TextStream", "ItemStream", "raise_native"]


def raise_native(exc: Exception) -> Error:
    """Turns a native ``"[code] message"`` exception into the matching :class:`Error`."""
    text = str(exc)
    if text.startswith("[") and "] " in text:
        code, message = text[1:].split("] ", 1)
        return error_for(code, message)
    return Error(text)


class Dispatcher:
    """Calls listeners for events, on the consumer's thread, in stream order. A listener that
    raises is reported with a warning and an ``error`` event; it never stops the stream."""

    def __init__(self, listeners: Dict[str, List[Callable[..., Any]]], model: Optional[str] = None) -> None:
        self.listeners = listeners
        self.model = model

    def _targets(self, name: str) -> List[Callable[..., Any]]:
        return self.listeners.get(name, []) + self.listeners.get("*", [])

    def payload(self, name: str, message: Any) -> Dict[str, Any]:
        event: Dict[str, Any] = {"event": name, "message": message}
        if self.model is not None:
            event["model"] = self.model
        return event

    def _failed(self, name: str, listener: Any, exc: BaseException) -> None:
        warnings.warn(f"oy3opy listener {listener!r} for {name!r} raised {exc!r}", RuntimeWarning, stacklevel=3)
        if name != "error":
            self.emit_sync("error", {"code": "listener", "message": f"listener for {name} raised {exc!r}"})

    def emit_sync(self, name: str, message: Any) -> None:
        """Calls the listeners; coroutine listeners run to completion on a private loop."""
        event = self.payload(name, message)
        for listener in self._targets(name):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    try:
                        asyncio.get_running_loop()
                    except RuntimeError:
                        asyncio.run(_await(result))
                    else:
                        asyncio.ensure_future(result)
            except Exception as exc:  # noqa: BLE001 - reported, never propagated
                self._failed(name, listener, exc)

    async def emit(self, name: str, message: Any) -> None:
        """Calls the listeners, awaiting coroutine listeners."""
        event = self.payload(name, message)
        for listener in self._targets(name):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - reported, never propagated
                self._failed(name, listener, exc)


async def _await(awaitable: Any) -> Any:
    return await awaitable


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


class _Base:
    """Takes native items, dispatches events, queues what the iterator yields."""

    def __init__(self, native: Any, dispatcher: Dispatcher) -> None:
        self._native = native
        self._dispatcher = dispatcher
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
            elif kind == "error":
                self._dispatcher.emit_sync("error", {"code": a, "message": b})
                raise error_for(a, b)
            else:
                self._ready.append(self._value(kind, a, b))

    async def _step_async(self) -> None:
        while self._pending and not self._ready:
            kind, a, b = self._pending.popleft()
            if kind == "event":
                await self._dispatcher.emit(a, json.loads(b))
            elif kind == "error":
                await self._dispatcher.emit("error", {"code": a, "message": b})
                raise error_for(a, b)
            else:
                self._ready.append(self._value(kind, a, b))

    # -- sync ------------------------------------------------------------------------------
    def __iter__(self) -> "_Base":
        return self

    def __next__(self) -> Any:
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
    def __aiter__(self) -> "_Base":
        return self

    async def __anext__(self) -> Any:
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

    def __enter__(self) -> "_Base":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "_Base":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class TextStream(_Base):
    """An answer: iterate to get text chunks (``for`` or ``async for``)."""

    def _value(self, kind: str, a: str, b: str) -> Any:
        return a

    def text(self) -> str:
        """Consumes the rest of the stream (blocking) and returns it."""
        return "".join(self)

    async def atext(self) -> str:
        """Consumes the rest of the stream and returns it."""
        return "".join([chunk async for chunk in self])


class ItemStream(_Base):
    """Task or stage results; ``convert`` turns each native JSON result into what is yielded."""

    def __init__(self, native: Any, dispatcher: Dispatcher, convert: Callable[[str, Dict[str, Any]], Any]) -> None:
        super().__init__(native, dispatcher)
        self._convert = convert

    def _value(self, kind: str, a: str, b: str) -> Any:
        return self._convert(kind, json.loads(a))
