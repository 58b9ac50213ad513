"""MCP tools by name from the Python face (issue 19): `tools=["time", fn]` on chats and calls,
`"tools"` in chain tasks, and `listen` passing `[mcp.*]` through, against the fake OpenAI
server whose model calls the real `mcp-server-time` (installed by `scripts/setup`)."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

import pytest
from conftest import RECORDED_ANSWER

from oy3opy.ai import Chat, Config, ConfigError, NotFoundError, exec, execTasksChain_once

pytest.importorskip("mcp_server_time")

MODEL = "openai:gpt-4o-mini"
TIME_SERVER = {"command": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"], "timeout_secs": 30}
CALL = ("call_t1", "time__get_current_time", '{"timezone": "UTC"}')


@pytest.fixture
def time_config(fake, fake_config):
    """The fake as `openai` and `mcp-server-time` as the MCP server `time`; the fake's model
    calls its `get_current_time`."""
    fake.mode = "tools"
    fake.tool_call = CALL
    return Config(fake_config, mcp={"time": TIME_SERVER})


def tool_result_sent(fake) -> Dict[str, Any]:
    """The tool message of the model's second request."""
    assert len(fake.requests) == 2, [r["body"]["messages"] for r in fake.requests]
    messages = fake.requests[1]["body"]["messages"]
    assert messages[-1]["role"] == "tool", messages
    assert messages[-1]["tool_call_id"] == "call_t1"
    return json.loads(messages[-1]["content"])


def test_a_chat_gives_the_model_an_mcp_servers_tools_and_the_second_request_carries_the_result(fake, time_config):
    events: List[Dict[str, Any]] = []
    listen = events.append
    chat = Chat(MODEL, config=Config(time_config, listener={"tool_call": listen, "tool_result": listen}), tools=["time"])
    assert "".join(chat.send("What time is it?")) == RECORDED_ANSWER
    offered = [t["function"]["name"] for t in fake.requests[0]["body"]["tools"]]
    assert "time__get_current_time" in offered
    result = tool_result_sent(fake)
    assert result["timezone"] == "UTC" and "datetime" in result
    assert [e["event"] for e in events] == ["tool_call", "tool_result"]
    assert events[0]["message"]["name"] == "time__get_current_time"
    assert events[1]["message"]["is_error"] is False and '"timezone"' in events[1]["message"]["content"]


def test_mcp_tools_and_python_functions_mix_in_one_list(fake, time_config):
    def get_weather(city: str) -> str:
        """The weather of a city."""
        return "sunny"

    stream = exec("Time?", None, MODEL, time_config, tools=["time.get_current_time", get_weather])
    assert stream.text() == RECORDED_ANSWER
    offered = sorted(t["function"]["name"] for t in fake.requests[0]["body"]["tools"])
    assert offered == ["get_weather", "time__get_current_time"]
    assert tool_result_sent(fake)["timezone"] == "UTC"


def test_a_python_function_runs_beside_mcp_tools_in_a_turn(fake, time_config):
    fake.tool_call = ("call_t1", "get_weather", '{"city": "Oslo"}')
    ran: List[str] = []

    def get_weather(city: str) -> str:
        """The weather of a city."""
        ran.append(city)
        return "sunny"

    chat = Chat(MODEL, config=time_config, tools=[get_weather, "time"])
    assert chat.send("Weather?").text() == RECORDED_ANSWER
    assert ran == ["Oslo"]
    assert fake.requests[1]["body"]["messages"][-1]["content"] == "sunny"


@pytest.mark.parametrize(
    "tools, says",
    [
        (["clock"], "unknown MCP server `clock`; the configured ones are: time"),
        (["time.get_the_time"], "has no tool `get_the_time`"),
    ],
)
def test_an_unknown_mcp_name_is_a_lookup_error_before_anything_is_sent(fake, time_config, tools, says):
    with pytest.raises(NotFoundError) as raised:
        Chat(MODEL, config=time_config, tools=tools)
    assert says in str(raised.value)
    chat = Chat(MODEL, config=time_config)
    with pytest.raises(LookupError, match="clock"):
        chat.send("Time?", tools=["clock"])
    with pytest.raises(LookupError, match="clock"):
        exec("Time?", None, MODEL, time_config, tools=["clock"])
    assert fake.requests == []


def test_a_function_named_like_an_mcp_tool_is_a_clear_error(fake, time_config):
    def time__get_current_time() -> str:
        """Shadows the MCP tool."""
        return "noon"

    with pytest.raises(ConfigError, match="time__get_current_time.*rename the function"):
        exec("Time?", None, MODEL, time_config, tools=[time__get_current_time, "time"])
    assert fake.requests == []


def test_a_chain_task_naming_tools_runs_the_tool_loop(fake, time_config):
    events: List[str] = []
    stages = execTasksChain_once(
        [[{"model": MODEL, "prompt": "Time?", "tools": ["time"]}]],
        Config(time_config, listener={"tool_result": lambda e: events.append(e["message"]["name"])}),
    )
    assert stages[0][0][1] == RECORDED_ANSWER
    assert tool_result_sent(fake)["timezone"] == "UTC"
    assert events == ["time__get_current_time"]


def test_a_chain_task_naming_an_unknown_tool_is_refused_before_any_task_runs(fake, time_config):
    with pytest.raises(NotFoundError, match="clock"):
        execTasksChain_once([[{"model": MODEL, "prompt": "Time?", "tools": ["clock"]}]], time_config)
    with pytest.raises(TypeError, match="'tools' must be a list"):
        execTasksChain_once([[{"model": MODEL, "prompt": "Time?", "tools": [len]}]], time_config)
    assert fake.requests == []


def time_servers_of_this_process() -> int:
    """How many `mcp_server_time` children this process has (read from /proc)."""
    import os
    from pathlib import Path

    count = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"mcp_server_time" in cmdline:
            count += 1
    return count


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_calls_under_the_same_mcp_config_share_one_running_server(fake, time_config):
    for _ in range(2):
        fake.requests.clear()
        assert exec("Time?", None, MODEL, time_config, tools=["time"]).text() == RECORDED_ANSWER
    chat = Chat(MODEL, config=time_config, tools=["time"])
    fake.requests.clear()
    assert chat.send("Time?").text() == RECORDED_ANSWER
    assert time_servers_of_this_process() == 1


def test_an_mcp_name_without_mcp_servers_in_the_config_says_how_to_add_one(fake, fake_config):
    with pytest.raises(NotFoundError, match=r"no MCP servers are configured; add a section \[mcp.time\]"):
        Chat(MODEL, config=fake_config, tools=["time"])
