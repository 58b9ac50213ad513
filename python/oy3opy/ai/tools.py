"""Python functions as tools a model may call.

A plain or ``async`` function with type hints and a docstring is a tool: its name is the
function's ``__name__``, its description the docstring's first paragraph (each argument's from
an ``Args:`` or ``Parameters`` section), and the JSON Schema of its arguments comes from the
hints. Give a :class:`~oy3opy.ai.Chat` tools with ``Chat(model, tools=[fn, ...])``; the engine
runs the loop (the model calls, the function runs, the model reads the result) and the
function runs on the thread consuming the answer.

>>> def get_weather(city: str, days: int = 1) -> str:
...     '''The weather of a city.
...
...     Args:
...         city: The city's name.
...     '''
...     return "sunny"
>>> Tool(get_weather).parameters
{'type': 'object', 'properties': {'city': {'type': 'string', 'description': "The city's name."}, 'days': {'type': 'integer', 'default': 1}}, 'required': ['city']}

Hints and their schemas: ``int`` integer, ``float`` number, ``str`` string, ``bool`` boolean,
``list[X]``/``set[X]``/``tuple[X, ...]`` array of X, ``tuple[X, Y]`` a pair, ``dict``/
``dict[str, X]`` object, ``Optional[X]``/``X | None`` X or null, ``Union[X, Y]`` any of them,
``Literal[...]`` and ``Enum`` subclasses an enum (an ``Enum`` argument arrives as the member),
``Annotated[X, "text"]`` X described by the text, ``Any`` or no hint anything. A parameter
with a default is not required.

A string in ``tools=`` names MCP tools of the config in effect (its ``mcp`` sections, e.g.
``config.mcp['time'] = {'command': ['mcp-server-time']}``): a whole server (``"time"``) or one
tool (``"time.get_current_time"``). The engine runs those and offers them to the model as
``NAME__tool``; functions and names mix in one list (``tools=["time", fn]``).
"""

from __future__ import annotations

import collections.abc as abc
import enum
import inspect
import json
import re
import sys
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Tool", "ToolSpec", "Tools", "resolve"]

#: A tool's JSON definition as the engine takes it: ``name``, ``description``, ``parameters``.
ToolSpec = Dict[str, Any]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: The most of an exception's text a model reads back.
_MAX_ERROR_CHARS = 2000

_SCALARS: Dict[Any, str] = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}

_UNION_TYPES: Tuple[Any, ...] = (Union,)
if sys.version_info >= (3, 10):  # `X | None`
    import types

    _UNION_TYPES = (Union, types.UnionType)


class Tool:
    """A function the model may call, with its definition.

    ``Tool(function, name=None, description=None)``: ``name`` and ``description`` default to
    the function's ``__name__`` and docstring. Passing a function in ``tools=`` is the same as
    passing ``Tool(function)``; build one yourself to rename a function (a ``lambda``) or to
    look at the schema the model gets (:attr:`parameters`).

    A name must be 1 to 64 of ``A-Z a-z 0-9 _ -`` (``ValueError`` otherwise); a hint with no
    JSON Schema, ``*args`` or a positional-only parameter is a ``TypeError``.
    """

    __slots__ = ("function", "name", "description", "parameters", "_enums")

    def __init__(self, function: Callable[..., Any], name: Optional[str] = None, description: Optional[str] = None) -> None:
        if not callable(function):
            raise TypeError(f"a tool must be a function, not {type(function).__name__} {function!r}")
        self.function = function
        name = name if name is not None else getattr(function, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(f"{function!r} has no __name__; give it one with Tool({function!r}, name='...')")
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"tool name {name!r} (from {function!r}): use 1 to 64 letters, digits, '_' or '-'; "
                "rename the function or pass Tool(function, name='...')"
            )
        self.name: str = name
        summary, arguments = _parse_doc(inspect.getdoc(function) or "")
        self.description: Optional[str] = description if description is not None else summary
        self.parameters: Dict[str, Any]
        self.parameters, self._enums = _parameters(function, name, arguments)

    def spec(self) -> ToolSpec:
        """The definition the model is sent."""
        spec: ToolSpec = {"name": self.name, "parameters": self.parameters}
        if self.description:
            spec["description"] = self.description
        return spec

    def arguments(self, arguments: Mapping[str, Any]) -> Dict[str, Any]:
        """The model's arguments as the function takes them (an ``Enum`` value as its member)."""
        out = dict(arguments)
        for key, kind in self._enums.items():
            if key in out and out[key] is not None:
                out[key] = kind(out[key])
        return out

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, {self.function!r})"


class Tools(typing.NamedTuple):
    """``tools=`` split by who runs them: Python functions (on the reader's thread) and the
    names of MCP servers or tools (by the engine, looked up in the config in effect)."""

    functions: List[Tool]
    mcp: List[str]


def resolve(tools: Optional[Sequence[Any]]) -> Optional[Tools]:
    """``tools=`` as given to a chat or a call: functions and :class:`Tool` objects, checked now
    (names unique), and strings naming MCP servers or tools (the engine looks them up before
    anything is sent). ``None`` is no tools."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, (Sequence, set, frozenset)):
        raise TypeError(f"tools must be a list of functions and MCP tool names, not {type(tools).__name__}")
    out: List[Tool] = []
    names: List[str] = []
    seen: Dict[str, Any] = {}
    for item in tools:
        if isinstance(item, str):
            if not item:
                raise ValueError("tools=['']: name an MCP server ('time') or one of its tools ('time.get_current_time')")
            if item not in names:
                names.append(item)
            continue
        tool = item if isinstance(item, Tool) else Tool(item)
        if tool.name in seen:
            raise ValueError(
                f"two tools are named {tool.name!r} ({seen[tool.name]!r} and {tool.function!r}); "
                "rename one with Tool(function, name='...')"
            )
        seen[tool.name] = tool.function
        out.append(tool)
    return Tools(out, names)


def output(value: Any) -> str:
    """What the model reads of a return value: a string as it is, anything else as JSON
    (``str(value)`` when it is not JSON)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def failure(exc: BaseException) -> str:
    """What the model reads of an exception a tool raised: its type and message, bounded."""
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + f" [cut: {len(text)} characters]"
    return text


# -- schema from hints --------------------------------------------------------------------------


def _parameters(function: Callable[..., Any], name: str, described: Dict[str, str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"tool {name!r}: cannot read the parameters of {function!r}: {exc}") from None
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - a hint that does not evaluate, said plainly
        raise TypeError(
            f"tool {name!r}: its type hints do not evaluate ({exc}); with `from __future__ import "
            "annotations` the types a hint names must be importable from the function's module"
        ) from None
    properties: Dict[str, Any] = {}
    required: List[str] = []
    enums: Dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind == param.VAR_KEYWORD:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise TypeError(
                f"tool {name!r}: parameter {param.name!r} cannot be given by name (*args or "
                "positional-only); a model passes arguments by name"
            )
        hint = hints.get(param.name, Any)
        where = f"tool {name!r}, parameter {param.name!r}"
        schema = _schema(hint, where)
        if param.name in described and "description" not in schema:
            schema["description"] = described[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            default = param.default.value if isinstance(param.default, enum.Enum) else param.default
            if _is_json(default):
                schema["default"] = default
        properties[param.name] = schema
        kind = _enum_of(hint)
        if kind is not None:
            enums[param.name] = kind
    parameters: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return parameters, enums


def _schema(hint: Any, where: str) -> Dict[str, Any]:
    """The JSON Schema of one hint; a ``TypeError`` naming ``where`` when it has none."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is None:
        return {"type": "null"}
    if isinstance(hint, type) and hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum([m.value for m in hint], where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema = _schema(args[0], where)
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        if text:
            schema["description"] = text
        return schema
    if origin is typing.Literal:
        return _enum(list(args), where)
    if origin in _UNION_TYPES:
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        schema = _schema(options[0], where) if len(options) == 1 else {"anyOf": [_schema(a, where) for a in options]}
        if not nullable:
            return schema
        if isinstance(schema.get("type"), str) and "enum" not in schema:
            return {**schema, "type": [schema["type"], "null"]}
        return {"anyOf": [schema, {"type": "null"}]}
    container = origin if origin is not None else hint
    if container in (list, abc.Sequence, abc.Iterable):
        return _array(args, where)
    if container in (set, frozenset, abc.Set):
        return {**_array(args, where), "uniqueItems": True}
    if container is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return _array(args[:1], where)
        items = [_schema(a, where) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if container in (dict, abc.Mapping):
        if args and args[0] is not str:
            raise TypeError(f"{where}: {hint!r} has {args[0]!r} keys; JSON object keys are strings (use dict[str, ...])")
        if len(args) == 2 and args[1] is not Any:
            return {"type": "object", "additionalProperties": _schema(args[1], where)}
        return {"type": "object"}
    raise TypeError(
        f"{where}: the hint {hint!r} has no JSON Schema; use str, int, float, bool, list, tuple, "
        "dict, Optional, Union, Literal, an Enum or Any"
    )


def _array(args: Tuple[Any, ...], where: str) -> Dict[str, Any]:
    if args and args[0] is not Any:
        return {"type": "array", "items": _schema(args[0], where)}
    return {"type": "array"}


def _enum(values: List[Any], where: str) -> Dict[str, Any]:
    if not all(_is_json(v) for v in values):
        raise TypeError(f"{where}: the choices {values!r} are not all JSON values")
    kinds = {_json_type(v) for v in values}
    schema: Dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), **schema}
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "object" if isinstance(value, dict) else "array"


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _enum_of(hint: Any) -> Any:
    """The ``Enum`` class of a hint (``Color``, ``Optional[Color]``), to turn values back into members."""
    if typing.get_origin(hint) is typing.Annotated:
        return _enum_of(typing.get_args(hint)[0])
    if typing.get_origin(hint) in _UNION_TYPES:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _enum_of(options[0]) if len(options) == 1 else None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    return None


# -- docstrings ---------------------------------------------------------------------------------

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params)\s*:?\s*$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(?::.*)?$")
_OTHER_SECTION = re.compile(r"^(Returns?|Raises|Yields?|Examples?|Notes?|See Also|Attributes|References)\s*:?\s*$")


def _parse_doc(doc: str) -> Tuple[Optional[str], Dict[str, str]]:
    """The first paragraph (its lines joined) and each argument's description from a Google
    (``Args:``) or NumPy (``Parameters`` then dashes) section."""
    lines = doc.expandtabs().splitlines()
    summary: List[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    arguments: Dict[str, str] = {}
    i = 0
    while i < len(lines):
        if not _SECTION.match(lines[i].strip()):
            i += 1
            continue
        base = _indent(lines[i])
        i += 1
        numpy = i < len(lines) and set(lines[i].strip()) == {"-"}
        if numpy:
            i += 1
        current: Optional[str] = None
        item_indent = None
        while i < len(lines):
            line = lines[i]
            text = line.strip()
            if not text:
                i += 1
                if numpy and i < len(lines) and set(lines[i].strip()) == {"-"}:
                    break  # the next NumPy section's underline came after its title
                continue
            if _indent(line) <= base and not numpy:
                break
            if numpy and _OTHER_SECTION.match(text) and _indent(line) <= base:
                break
            if item_indent is None:
                item_indent = _indent(line)
            if _indent(line) <= item_indent:
                match = (_NUMPY_ITEM if numpy else _GOOGLE_ITEM).match(text)
                if match is None:
                    break
                current = match.group(1)
                arguments[current] = "" if numpy else match.group(2).strip()
            elif current is not None:
                arguments[current] = f"{arguments[current]} {text}".strip()
            i += 1
    return (" ".join(summary) or None), {k: v for k, v in arguments.items() if v}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
