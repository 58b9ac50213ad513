"""`oy3opy.ai.websocket.listen`: the original README's demo client, unchanged, and the official
`openai` SDK against our server, with the fake OpenAI-compatible upstream behind it."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
import threading

import pytest

from conftest import RECORDED_ANSWER

websockets_sync = pytest.importorskip("websockets.sync.client")

# The demo client of the original README, verbatim but for the server's address.
DEMO_CLIENT = '''
# client test
from oy3opy.utils.string import tojson
from oy3opy.utils.file import io
from websockets.sync.client import connect
import json

with io('cookie.json') as f:
    cookie = dict([(c['name'], c['value']) for c in json.load(f)])

ws = connect("ws://127.0.0.1:8443")

ws.send(tojson({'id':'IdOfThisAi', 'model':'bing','cookie':cookie,'prompt':'hello'}))
ws.send(tojson({'id':'IdOfThisAi', 'prompt':'how are you'}))

ws.send(tojson({'model':'bing','cookie':cookie,'prompt':'hello'}))
while True:
    message = json.loads(ws.recv())
    if message['type'] == 'message': # error | event | message
        print(message['message'], end='', flush=True)
    else:
        print(message)
'''


class Served:
    """listen() running in a background event loop; ``stop()`` cancels it."""

    def __init__(self, fake_base_url: str, token=None, mcp=None, **options) -> None:
        from oy3opy.ai import Config
        from oy3opy.ai.websocket import listen

        self.address = ""
        self.error = None
        bound = threading.Event()
        loop = asyncio.new_event_loop()
        cfg = Config(
            providers={"openai": {"base_url": fake_base_url, "max_retries": 0}},
            aliases={"bing": "openai:gpt-4o-mini"},
            model="openai:gpt-4o-mini",
            mcp=mcp or {},
        )

        def ready(address: str) -> None:
            self.address = address
            bound.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self.task = loop.create_task(
                listen("127.0.0.1", 0, None, token=token, ready=ready, config=cfg, **options)
            )
            try:
                loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # noqa: BLE001
                self.error = exc
                bound.set()

        self.loop = loop
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert bound.wait(20), "the server did not start"
        if self.error:
            raise self.error

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


def test_the_original_demo_client_runs_unchanged_against_listen(fake, tmp_path):
    served = Served(fake.base_url, idle_timeout_secs=2)
    try:
        (tmp_path / "cookie.json").write_text(json.dumps([{"name": "_U", "value": "cookie-value-42"}]))
        script = DEMO_CLIENT.replace("ws://127.0.0.1:8443", f"ws://{served.address}")
        # The demo loops forever; the server's idle timeout ends it once every reply is done.
        run = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert "ConnectionClosed" in run.stderr, run.stderr
        lines = [line for line in run.stdout.splitlines() if "{'type'" in line]
        frames = [ast.literal_eval(line[line.index("{'type'") :]) for line in lines]  # printed dicts
        signals = [f for f in frames if f["type"] == "signal"]
        assert len(signals) == 3, run.stdout
        assert not [f for f in frames if f["type"] == "error" and f.get("code") != "idle_timeout"], run.stdout
        # Answer text is printed without newlines, frames one per line after it; the three
        # replies interleave, so compare the characters, not the order.
        text = "".join(line[: line.index("{'type'")] if "{'type'" in line else line for line in run.stdout.splitlines())
        assert sorted(text) == sorted(RECORDED_ANSWER * 3), run.stdout
        assert len(fake.requests) == 3
        assert all(r["headers"]["authorization"] == "Bearer _U=cookie-value-42" for r in fake.requests)
        histories = sorted(len(r["body"]["messages"]) for r in fake.requests)
        assert histories == [1, 1, 3], "the second prompt continued the chat"
        assert "cookie-value-42" not in run.stdout
    finally:
        served.stop()


def test_replies_of_the_demo_frames_are_told_apart_by_id(fake):
    from oy3opy.utils.string import tojson

    served = Served(fake.base_url)
    try:
        ws = websockets_sync.connect(f"ws://{served.address}")
        ws.send(tojson({"id": "IdOfThisAi", "model": "bing", "prompt": "hello"}))
        ws.send(tojson({"id": "IdOfThisAi", "prompt": "how are you"}))
        ws.send(tojson({"model": "bing", "prompt": "hello", "ref": "solo"}))
        texts, signals = {}, 0
        while signals < 3:
            message = json.loads(ws.recv(timeout=30))
            if message["type"] == "message":
                key = message.get("id", message.get("ref"))
                texts[key] = texts.get(key, "") + message["message"]
            elif message["type"] == "signal":
                signals += 1
                assert message["finish_reason"] == "stop"
            elif message["type"] == "error":
                pytest.fail(f"error frame: {message}")
        ws.close()
        assert texts == {"IdOfThisAi": RECORDED_ANSWER * 2, "solo": RECORDED_ANSWER}
    finally:
        served.stop()


def test_listen_refuses_an_open_address_without_a_token(fake):
    from oy3opy.ai.websocket import listen

    with pytest.raises(OSError, match="without a token"):
        asyncio.run(listen("0.0.0.0", 0))
    with pytest.raises(ValueError, match="max_chatz"):
        asyncio.run(listen("127.0.0.1", 0, max_chatz=1))


def test_a_token_is_required_when_listen_has_one(fake):
    from websockets.exceptions import InvalidStatus

    served = Served(fake.base_url, token="s3cret")
    try:
        with pytest.raises(InvalidStatus):
            websockets_sync.connect(f"ws://{served.address}")
        ws = websockets_sync.connect(f"ws://{served.address}/?token=s3cret")
        ws.send(json.dumps({"prompt": "hi"}))
        frames = []
        while not frames or frames[-1]["type"] != "signal":
            frames.append(json.loads(ws.recv(timeout=30)))
        ws.close()
        assert "".join(f["message"] for f in frames if f["type"] == "message") == RECORDED_ANSWER
    finally:
        served.stop()


openai_sdk = pytest.importorskip("openai")


def test_the_openai_sdk_streams_and_non_streams_through_our_server(fake):
    served = Served(fake.base_url)
    try:
        client = openai_sdk.OpenAI(base_url=f"http://{served.address}/v1", api_key="not-needed", max_retries=0)
        whole = client.chat.completions.create(
            model="openai:gpt-4o-mini",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+1?"}],
        )
        assert whole.choices[0].message.content == RECORDED_ANSWER
        assert whole.choices[0].finish_reason == "stop"
        assert whole.id.startswith("chatcmpl-") and whole.object == "chat.completion"
        assert fake.requests[0]["body"]["messages"][0] == {"role": "system", "content": "Be brief."}

        stream = client.chat.completions.create(
            model="bing",
            messages=[{"role": "user", "content": "What is 1+1?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, finish = [], None
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert len(pieces) > 1
        assert "".join(pieces) == RECORDED_ANSWER
        assert finish == "stop"

        models = [m.id for m in client.models.list()]
        assert "bing" in models and "openai:gpt-4o-mini" in models
    finally:
        served.stop()


def test_the_openai_sdks_tool_loop_runs_through_our_server(fake):
    """The SDK's own tool-calling flow (tools, streamed tool_calls deltas, the assistant message
    echoed, a ``tool`` message with the result) through ``oy3o serve`` to an OpenAI upstream."""
    fake.mode = "tools"
    served = Served(fake.base_url)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    try:
        client = openai_sdk.OpenAI(base_url=f"http://{served.address}/v1", api_key="not-needed", max_retries=0)
        messages = [{"role": "user", "content": "Weather in Oslo?"}]
        stream = client.chat.completions.create(
            model="openai:gpt-4o-mini", messages=messages, tools=tools, stream=True)
        calls, finish = {}, None
        for chunk in stream:
            if not chunk.choices:
                continue
            for d in chunk.choices[0].delta.tool_calls or []:
                call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = d.id or call["id"]
                call["name"] += (d.function.name or "") if d.function else ""
                call["arguments"] += (d.function.arguments or "") if d.function else ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls"
        assert calls == {0: {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        assert fake.requests[0]["body"]["tools"] == tools

        city = json.loads(calls[0]["arguments"])["city"]
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_w1", "type": "function",
                 "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}]},
            {"role": "tool", "tool_call_id": "call_w1", "content": json.dumps({"city": city, "temp_c": 3})},
        ]
        answer = client.chat.completions.create(model="openai:gpt-4o-mini", messages=messages, tools=tools)
        assert answer.choices[0].message.content == RECORDED_ANSWER
        sent = fake.requests[1]["body"]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == "call_w1"
        assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": '{"city": "Oslo", "temp_c": 3}'}
    finally:
        served.stop()


# A notebook's situation: nest_asyncio applied, listen() started inside an already running loop,
# and a nested asyncio.run() while it serves.
NESTED_SCRIPT = '''
import asyncio, json, sys
import nest_asyncio
nest_asyncio.apply()
from oy3opy.ai import Config
from oy3opy.ai.websocket import listen
from websockets.sync.client import connect

async def main():
    bound = {}
    cfg = Config(providers={"openai": {"base_url": sys.argv[1], "max_retries": 0}}, model="openai:gpt-4o-mini")
    server = asyncio.ensure_future(listen("127.0.0.1", 0, None, ready=lambda a: bound.setdefault("a", a), config=cfg))
    asyncio.run(asyncio.sleep(0.1))  # a nested run, as a second notebook cell would do
    while "a" not in bound:
        await asyncio.sleep(0.02)
    ws = connect("ws://" + bound["a"])
    ws.send(json.dumps({"prompt": "hello"}))
    text = ""
    while True:
        frame = json.loads(ws.recv(timeout=30))
        if frame["type"] == "message":
            text += frame["message"]
        elif frame["type"] != "event":
            break
    ws.close()
    server.cancel()
    print(text)

asyncio.run(main())
'''


def test_listen_runs_under_nest_asyncio_in_a_running_loop(fake):
    pytest.importorskip("nest_asyncio")
    done = subprocess.run(
        [sys.executable, "-c", NESTED_SCRIPT, fake.base_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == RECORDED_ANSWER


def test_the_embedded_local_model_answers_through_the_server(fake):
    """`local` through both server faces: a WebSocket one-shot and OpenAI-compatible HTTP."""
    import urllib.request

    served = Served(fake.base_url)
    try:
        ws = websockets_sync.connect(f"ws://{served.address}")
        ws.send(json.dumps({"model": "local:smollm2", "prompt": "What is 1+1?"}))
        text = ""
        while True:
            frame = json.loads(ws.recv(timeout=120))
            if frame["type"] == "message":
                text += frame["message"]
            elif frame["type"] == "error":
                pytest.fail(f"error frame: {frame}")
            elif frame["type"] == "signal":
                break
        ws.close()
        assert "2" in text

        request = urllib.request.Request(
            f"http://{served.address}/v1/chat/completions",
            data=json.dumps({
                "model": "local:smollm2",
                "messages": [{"role": "user", "content": "What is 1+1?"}],
            }).encode(),
            headers={"content-type": "application/json"},
        )
        reply = json.load(urllib.request.urlopen(request, timeout=120))
        assert "2" in reply["choices"][0]["message"]["content"]
        assert not fake.requests, "nothing went to the OpenAI upstream"
    finally:
        served.stop()


def test_listen_passes_the_configs_mcp_servers_through_so_a_client_may_name_their_tools(fake):
    """`config=Config(mcp=...)` reaches the server: `tools=["time"]` (the server's grant) is
    accepted and a client's `tools: ["time"]` runs the real `mcp-server-time` in the loop."""
    pytest.importorskip("mcp_server_time")
    from oy3opy.utils.string import tojson

    fake.mode = "tools"
    fake.tool_call = ("call_t1", "time__get_current_time", '{"timezone": "UTC"}')
    time_server = {"command": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]}
    served = Served(fake.base_url, mcp={"time": time_server}, tools=["time"])
    try:
        ws = websockets_sync.connect(f"ws://{served.address}")
        ws.send(tojson({"model": "openai:gpt-4o-mini", "prompt": "Time?", "tools": ["time"]}))
        text = ""
        while True:
            message = json.loads(ws.recv(timeout=60))
            if message["type"] == "message":
                text += message["message"]
            elif message["type"] == "signal":
                break
            elif message["type"] == "error":
                pytest.fail(f"error frame: {message}")
        ws.close()
        assert text == RECORDED_ANSWER
        sent = fake.requests[1]["body"]["messages"][-1]
        assert sent["role"] == "tool" and json.loads(sent["content"])["timezone"] == "UTC"
    finally:
        served.stop()
