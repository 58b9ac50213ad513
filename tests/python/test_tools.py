"""Python functions as tools (issue 19, Python face): the definition made from hints and the
docstring, the tool loop through a chat against the fake OpenAI server, the function run on
the thread reading the answer, failures as error results, and the tool events."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
import time
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Union

import pytest
from conftest import RECORDED_ANSWER

from oy3opy.ai import Chat, Config, Tool, exec, exec_once

MODEL = "openai:gpt-4o-mini"


def get_weather(city: str) -> Dict[str, Any]:
    """The weather of a city.

    Args:
        city: The city's name.
    """
    return {"city": city, "temp_c": 3}


WEATHER_SPEC = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name."}},
            "required": ["city"],
        },
    },
}


def sent_tool_messages(fake) -> List[Dict[str, Any]]:
    """The messages of the model's second request: the prompt, its call, the results."""
    assert len(fake.requests) == 2, [r["body"]["messages"] for r in fake.requests]
    return fake.requests[1]["body"]["messages"]


# -- the loop -----------------------------------------------------------------------------------


def test_a_chat_runs_its_tool_on_the_thread_reading_the_answer_and_the_model_reads_the_result(fake, fake_config):
    fake.mode = "tools"
    ran_on: List[int] = []

    def get_weather(city: str) -> Dict[str, Any]:
        """The weather of a city.

        Args:
            city: The city's name.
        """
        ran_on.append(threading.get_ident())
        return {"city": city, "temp_c": 3}

    answers: List[str] = []
    readers: List[int] = []

    def read() -> None:
        readers.append(threading.get_ident())
        chat = Chat(MODEL, config=fake_config, tools=[get_weather])
        answers.append("".join(chat.send("Weather in Oslo?")))

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(30)
    assert answers == [RECORDED_ANSWER]
    assert ran_on == readers, "the function ran on another thread than the reader's"
    assert fake.requests[0]["body"]["tools"] == [WEATHER_SPEC]
    messages = sent_tool_messages(fake)
    assert messages[1]["tool_calls"][0]["id"] == "call_w1"
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_w1", "content": '{"city": "Oslo", "temp_c": 3}'}
    assert fake.requests[1]["body"]["tools"] == [WEATHER_SPEC], "the tools stay offered after a step"


def test_an_async_tool_is_awaited_on_the_event_loop_reading_the_answer(fake, fake_config):
    fake.mode = "tools"
    seen: List[Tuple[int, Any]] = []

    async def get_weather(city: str) -> str:
        """The weather of a city."""
        await asyncio.sleep(0.01)
        seen.append((threading.get_ident(), asyncio.get_running_loop()))
        return f"{city}: 3 degrees"

    async def main() -> Tuple[str, int, Any]:
        chat = Chat(MODEL, config=fake_config, tools=[get_weather])
        answer = await chat.send_once("Weather in Oslo?")
        return answer, threading.get_ident(), asyncio.get_running_loop()

    answer, thread, loop = asyncio.run(main())
    assert answer == RECORDED_ANSWER
    assert seen == [(thread, loop)], "not awaited on the caller's loop"
    assert sent_tool_messages(fake)[2]["content"] == "Oslo: 3 degrees", "a str is sent as it is"


def test_an_async_tool_runs_to_its_end_when_the_answer_is_read_without_a_loop(fake, fake_config):
    fake.mode = "tools"
    ran_on: List[int] = []

    async def get_weather(city: str) -> List[str]:
        ran_on.append(threading.get_ident())
        await asyncio.sleep(0)
        return [city, "cold"]

    answer = exec("Weather in Oslo?", None, MODEL, fake_config, tools=[get_weather]).text()
    assert answer == RECORDED_ANSWER
    assert ran_on == [threading.get_ident()]
    assert sent_tool_messages(fake)[2]["content"] == '["Oslo", "cold"]'


def test_a_sync_tool_called_from_async_code_runs_on_the_loops_thread(fake, fake_config):
    fake.mode = "tools"
    ran_on: List[int] = []

    def get_weather(city: str) -> object:
        ran_on.append(threading.get_ident())
        return object()  # not JSON: its str()

    async def main() -> Tuple[str, int]:
        return await exec_once("Weather?", None, MODEL, fake_config, tools=[get_weather]), threading.get_ident()

    answer, thread = asyncio.run(main())
    assert answer == RECORDED_ANSWER
    assert ran_on == [thread]
    assert sent_tool_messages(fake)[2]["content"].startswith("<object object at")


def test_a_tool_that_raises_gives_the_model_an_error_result_and_the_turn_completes(fake, fake_config):
    fake.mode = "tools"
    results: List[Dict[str, Any]] = []

    def get_weather(city: str) -> str:
        raise LookupError(f"no station in {city}")

    listeners = {"tool_result": lambda e: results.append(e["message"])}
    chat = Chat(MODEL, None, listeners, config=fake_config, tools=[get_weather])
    assert chat.send("Weather?").text() == RECORDED_ANSWER
    assert sent_tool_messages(fake)[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "LookupError: no station in Oslo"}
    assert [(r["is_error"], r["content"]) for r in results] == [(True, "LookupError: no station in Oslo")]
    assert [m["role"] for m in chat.history] == ["user", "assistant", "tool", "assistant"]


def test_arguments_the_function_does_not_take_are_an_error_result_the_model_reads(fake, fake_config):
    fake.mode = "tools"
    fake.tool_call = ("call_x", "get_weather", '{"city": "Oslo", "when": "now"}')
    chat = Chat(MODEL, config=fake_config, tools=[get_weather])
    assert chat.send("Weather?").text() == RECORDED_ANSWER
    content = sent_tool_messages(fake)[2]["content"]
    assert content.startswith("TypeError: ") and "'when'" in content


def test_a_tool_interrupted_by_the_reader_ends_the_turn_and_the_next_turn_does_not_wait(fake, fake_config):
    fake.mode = "tools"

    class Stop(BaseException):
        pass

    def get_weather(city: str) -> str:
        raise Stop()

    chat = Chat(MODEL, config=fake_config, tools=[get_weather])
    with pytest.raises(Stop):
        for _ in chat.send("Weather?"):
            pass
    started = time.time()
    fake.mode = "stream"
    assert asyncio.run(chat.send_once("And now?", tools=[])) == RECORDED_ANSWER
    assert time.time() - started < 5, "the next turn waited for the interrupted tool"
    assert "tools" not in fake.requests[-1]["body"], "tools=[] sends none for this turn"


def test_a_turn_closed_while_its_tool_runs_leaves_no_call_waiting(fake, fake_config):
    fake.mode = "tools"
    streams: List[Any] = []

    def get_weather(city: str) -> str:
        streams[0].close()
        return "too late"

    chat = Chat(MODEL, config=fake_config, tools=[get_weather])
    streams.append(chat.send("Weather?"))
    assert "".join(streams[0]) == ""
    started = time.time()
    fake.mode = "stream"
    assert chat.send("And now?").text() == RECORDED_ANSWER
    assert time.time() - started < 5, "the next turn waited for the closed turn's tool"
    assert len(fake.requests) == 2, "the closed turn sent no tool result"
    assert [m["role"] for m in fake.requests[1]["body"]["messages"]] == ["user"]


def test_tool_events_reach_listeners_in_order_around_the_call(fake, fake_config):
    fake.mode = "tools"
    order: List[str] = []
    payloads: Dict[str, Any] = {}

    def listen(event: Dict[str, Any]) -> None:
        order.append(event["event"])
        payloads[event["event"]] = event

    def get_weather(city: str) -> str:
        order.append("ran")
        return "sunny"

    listeners = {"tool_call": listen, "tool_result": listen, "result": listen}
    assert exec("Weather?", None, MODEL, Config(fake_config, listener=listeners), tools=[get_weather]).text() == RECORDED_ANSWER
    assert order == ["tool_call", "ran", "tool_result", "result"]
    call = payloads["tool_call"]
    assert call["model"] == MODEL
    assert call["message"] == {"id": "call_w1", "name": "get_weather", "arguments": {"city": "Oslo"}}
    result = payloads["tool_result"]["message"]
    assert isinstance(result.pop("elapsed_ms"), int)
    assert result == {"call_id": "call_w1", "name": "get_weather", "content": "sunny", "is_error": False}


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def test_an_enum_argument_arrives_as_its_member(fake, fake_config):
    fake.mode = "tools"
    fake.tool_call = ("call_e", "paint", '{"color": "red"}')
    got: List[Any] = []

    def paint(color: Color) -> str:
        got.append(color)
        return "done"

    assert exec("Paint", None, MODEL, fake_config, tools=[paint]).text() == RECORDED_ANSWER
    assert got == [Color.RED]


# -- definitions --------------------------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


def forecast(
    city: str,
    days: int,
    hourly: bool,
    threshold: float,
    tags: List[str],
    point: Tuple[float, float],
    samples: tuple,
    extra: dict,
    labels: Dict[str, int],
    unit: Unit,
    kind: Literal["rain", "snow"],
    note: Optional[str],
    level: Union[int, str],
    raw,
    anything: Any = None,
    described: Annotated[int, "How many, at most."] = 3,
    style: Unit = Unit.CELSIUS,
) -> str:
    """A forecast
    for a city.

    A second paragraph the model does not need.

    Parameters
    ----------
    city : str
        The city's name,
        in English.
    days : int
        How many days.

    Returns
    -------
    str
    """
    return ""


FORECAST_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city's name, in English."},
        "days": {"type": "integer", "description": "How many days."},
        "hourly": {"type": "boolean"},
        "threshold": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "minItems": 2, "maxItems": 2},
        "samples": {"type": "array"},
        "extra": {"type": "object"},
        "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
        "unit": {"type": "string", "enum": ["c", "f"]},
        "kind": {"type": "string", "enum": ["rain", "snow"]},
        "note": {"type": ["string", "null"]},
        "level": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "raw": {},
        "anything": {"default": None},
        "described": {"type": "integer", "description": "How many, at most.", "default": 3},
        "style": {"type": "string", "enum": ["c", "f"], "default": "c"},
    },
    "required": ["city", "days", "hourly", "threshold", "tags", "point", "samples", "extra", "labels", "unit", "kind", "note", "level", "raw"],
}


def test_the_schema_sent_upstream_comes_from_the_hints_and_the_docstring(fake, fake_config):
    assert exec("x", None, MODEL, fake_config, tools=[forecast]).text() == RECORDED_ANSWER
    sent = fake.requests[0]["body"]["tools"]
    assert sent == [{"type": "function", "function": {
        "name": "forecast", "description": "A forecast for a city.", "parameters": FORECAST_PARAMETERS}}]


def test_newer_hint_spellings_and_google_docstrings_map_alike():
    namespace: Dict[str, Any] = {}
    exec_source = '''
def search(query: "str | None", limit: "list[int] | None" = None, *, exact: bool = False, **more) -> str:
    """Searches.

    Args:
        query (str): What to look for;
            several words.
        limit: At most this many.

    Returns:
        The hits.
    """
'''
    import builtins

    builtins.exec(exec_source, namespace)
    tool = Tool(namespace["search"])
    assert tool.description == "Searches."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": ["string", "null"], "description": "What to look for; several words."},
            "limit": {"type": ["array", "null"], "items": {"type": "integer"},
                      "description": "At most this many.", "default": None},
            "exact": {"type": "boolean", "default": False},
        },
        "required": ["query"],
    }


def test_a_tool_can_be_renamed_and_described_and_a_function_without_hints_takes_anything():
    tool = Tool(lambda x, y=2: x, name="pick", description="Picks x.")
    assert tool.spec() == {
        "name": "pick",
        "description": "Picks x.",
        "parameters": {"type": "object", "properties": {"x": {}, "y": {"default": 2}}, "required": ["x"]},
    }
    assert Tool(lambda: 1, name="nothing").spec() == {"name": "nothing", "parameters": {"type": "object", "properties": {}}}


class Opaque:
    pass


def takes_opaque(thing: Opaque) -> str:
    return ""


def takes_star_args(*cities: str) -> str:
    return ""


def takes_int_keys(m: Dict[int, str]) -> str:
    return ""


def also_get_weather(city: str) -> str:
    return ""


def too_long(city: str) -> str:
    return ""


too_long.__name__ = "x" * 65


@pytest.mark.parametrize(
    "tools, error, says",
    [
        ([lambda city: city], ValueError, "'<lambda>'"),
        ([takes_opaque], TypeError, "parameter 'thing'"),
        ([takes_star_args], TypeError, "'cities'"),
        ([takes_int_keys], TypeError, "keys"),
        ([get_weather, Tool(also_get_weather, name="get_weather")], ValueError, "two tools are named 'get_weather'"),
        ([42], TypeError, "a tool must be a function"),
        (get_weather, TypeError, "tools must be a list"),
        ([too_long], ValueError, "1 to 64"),
    ],
)
def test_a_tool_that_cannot_be_described_is_refused_when_the_chat_is_made(tools, error, says):
    with pytest.raises(error, match=None) as raised:
        Chat(MODEL, tools=tools)
    assert says in str(raised.value)


def test_tool_names_must_be_what_providers_take():
    with pytest.raises(ValueError, match="1 to 64"):
        Tool(get_weather, name="get weather")
    assert Tool(get_weather, name="get-weather_2").name == "get-weather_2"


def test_tool_events_are_among_the_events_a_listener_may_name():
    from oy3opy.ai import Events

    assert {"tool_call", "tool_result", "tool_call_delta"} <= set(Events("openai"))
    Chat(MODEL, listeners={"tool_call": print, "tool_result": print}, config=Config(
        {"providers": {"openai": {"base_url": "http://127.0.0.1:9/v1"}}})).__exit__()


def test_the_config_bounds_the_tool_steps(fake, fake_config):
    fake.mode = "tools"
    limited = Config(fake_config, options={"max_tool_steps": 1})
    assert exec("Weather?", None, MODEL, limited, tools=[get_weather]).text() == RECORDED_ANSWER
    assert "tool_choice" not in fake.requests[0]["body"]
    assert fake.requests[1]["body"]["tool_choice"] == "none", "the last step asks for an answer"


def test_the_readmes_tool_example_runs(fake, capsys):
    from pathlib import Path

    from oy3opy.ai import config

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```python\n", readme.index("Python functions are tools")) + len("```python\n")
    example = readme[start:readme.index("```", start)]
    fake.mode = "tools"
    config.providers["openai"] = {"base_url": fake.base_url, "max_retries": 0}
    import builtins

    builtins.exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert RECORDED_ANSWER in printed
    assert "'event': 'tool_call'" in printed and "'event': 'tool_result'" in printed
    assert '"unit": "celsius"' in sent_tool_messages(fake)[2]["content"]
    assert [t["function"]["name"] for t in fake.requests[0]["body"]["tools"]] == ["get_weather", "search"]
