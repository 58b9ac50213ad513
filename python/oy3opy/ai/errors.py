"""Exceptions raised by :mod:`oy3opy.ai`, one per engine error code.

Each is also the standard exception it stands for, so generic handlers work:
:class:`TimeoutError` is a ``builtins.TimeoutError``, :class:`NetworkError` an ``OSError``,
:class:`CancelledError` an ``asyncio.CancelledError``, :class:`ConfigError` a ``ValueError``,
:class:`NotFoundError` a ``LookupError``. The native module raises these classes directly.
"""

from __future__ import annotations

import asyncio
import builtins

__all__ = [
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
    "error_for",
]


class Error(Exception):
    """Any oy3o failure. ``code`` is the engine's machine code, ``message`` says what to do."""

    code = "provider"

    def __init__(self, message: str, code: str | None = None) -> None:
        # One argument for the standard bases (OSError would read two as errno, strerror).
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __new__(cls, message: str = "", code: str | None = None) -> "Error":
        return super().__new__(cls, message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        return (type(self), (self.message, self.code))


class AuthError(Error):
    """A credential is missing, wrong or expired."""

    code = "auth"


class RateLimitError(Error):
    """The provider asked to slow down and the retries ran out."""

    code = "rate_limit"


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 - the engine's name for it
    """No answer, or no next chunk, arrived in time."""

    code = "timeout"


class NetworkError(Error, OSError):
    """The provider could not be reached, or the connection broke mid-answer."""

    code = "network"


class BadRequestError(Error):
    """The request was refused as malformed."""

    code = "bad_request"


class ProviderError(Error):
    """The provider failed on its side."""

    code = "provider"


class CancelledError(Error, asyncio.CancelledError):
    """The request was stopped."""

    code = "cancelled"


class ConfigError(Error, ValueError):
    """The configuration is invalid (a key, an option, a proxy, the store setting)."""

    code = "config"


class NotFoundError(Error, LookupError):
    """A model name names no model (an unknown provider or alias, a name that cannot be read,
    a model its provider does not have), or a chat or file does not exist."""

    code = "not_found"


_BY_CODE = {cls.code: cls for cls in (AuthError, RateLimitError, TimeoutError, NetworkError, BadRequestError, ProviderError, CancelledError, ConfigError, NotFoundError)}


#: The engine words some fixes for the terminal; in Python they are said the Python way.
_PYTHON_HINTS = (
    ("pass --key / --cookie", "pass cookie= (or set config.cookies[...])"),
    ("or pass --key", "or pass cookie="),
    ("the path given to --config or OY3O_CONFIG", "the path in OY3O_CONFIG"),
)


def error_for(code: str, message: str) -> Error:
    """The exception for an engine error code (what the native module raises)."""
    for terminal, python in _PYTHON_HINTS:
        message = message.replace(terminal, python)
    return _BY_CODE.get(code, Error)(message, code)
