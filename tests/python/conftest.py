"""Fixtures for the Python API tests: a fake OpenAI-compatible upstream on loopback that replays
a stream recorded from a real llama.cpp server byte for byte, with a few scripted faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORDED = (ROOT / "tests/fixtures/llama-cpp-python-0.3-chat-stream.sse").read_bytes()


class FakeOpenAI:
    """``mode`` picks the reply: ``stream`` (the recording), ``slow`` (the recording, one event
    every 50 ms), ``401``, ``500``, ``429``, ``tools`` (a streamed call of ``tool_call``, by
    default ``get_weather`` on Oslo, in OpenAI's recorded fragment shape, TOOLS.md §1.2, unless
    the request ends with tool results: then the recording), ``answers`` (the next text of
    ``answers``, streamed in OpenAI's chunk shape)."""

    def __init__(self) -> None:
        self.mode = "stream"
        self.tool_call = ("call_w1", "get_weather", '{"city": "Oslo"}')
        self.answers: List[str] = []
        self.requests: List[Dict[str, Any]] = []
        self.aborted = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if fake.mode in ("401", "500", "429"):
                    status = int(fake.mode)
                    payload = json.dumps({"error": {"message": f"scripted {status}", "type": "x", "code": None}}).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    if status == 429:
                        self.send_header("retry-after", "600")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("connection", "close")
                self.end_headers()
                events = RECORDED.split(b"\n\n")
                if fake.mode == "tools" and body["messages"][-1]["role"] != "tool":
                    events = tool_call_events(*fake.tool_call)
                if fake.mode == "slow":
                    events = events[:2] * 200 + events[2:]
                if fake.mode == "answers":
                    events = text_events(fake.answers.pop(0))
                try:
                    for event in events:
                        if not event.strip():
                            continue
                        self.wfile.write(event + b"\n\n")
                        self.wfile.flush()
                        if fake.mode == "slow":
                            threading.Event().wait(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    fake.aborted += 1
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def tool_call_events(call_id: str, name: str, arguments: str) -> List[bytes]:
    """A streamed tool call as OpenAI sends it: role chunk, first fragment with id and name,
    argument pieces, ``finish_reason: "tool_calls"``, ``[DONE]``."""
    def chunk(delta: Dict[str, Any], finish: Any = None) -> bytes:
        return b"data: " + json.dumps({
            "id": "chatcmpl-tools", "object": "chat.completion.chunk", "created": 1727346168,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish}]}).encode()
    out = [chunk({"role": "assistant", "content": None}),
           chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": ""}}]})]
    for i in range(0, len(arguments), 5):
        out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i:i + 5]}}]}))
    return out + [chunk({}, "tool_calls"), b"data: [DONE]"]


def text_events(text: str) -> List[bytes]:
    """``text`` streamed as OpenAI sends an answer: in pieces, ``finish_reason: "stop"``,
    ``[DONE]``."""
    def chunk(delta: Dict[str, Any], finish: Any = None) -> bytes:
        return b"data: " + json.dumps({
            "id": "chatcmpl-text", "object": "chat.completion.chunk", "created": 1727346168,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish}]}).encode()
    pieces = [chunk({"content": text[i:i + 7]}) for i in range(0, len(text), 7)]
    return [chunk({"role": "assistant", "content": ""}), *pieces, chunk({}, "stop"), b"data: [DONE]"]


#: The answer in the recording.
RECORDED_ANSWER = "".join(
    json.loads(line[6:])["choices"][0]["delta"].get("content", "")
    for line in RECORDED.decode().splitlines()
    if line.startswith("data: {") and json.loads(line[6:]).get("choices")
)


@pytest.fixture
def fake():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture
def fake_config(fake):
    """A per-call config whose `openai` provider is the fake."""
    from oy3opy.ai import Config

    return Config({"providers": {"openai": {"base_url": fake.base_url, "max_retries": 0}}})


@pytest.fixture(autouse=True)
def clean_global_config():
    """Each test starts from an empty global config and leaves none behind."""
    from oy3opy.ai import config

    saved = dict(config)
    config.clear()
    config.update({"cookies": {}, "contexts": {}, "proxies": {}, "listeners": {}, "providers": {}, "aliases": {}})
    config["options"] = {"max_tokens": 24}
    os.environ.pop("OPENAI_API_KEY", None)
    yield
    config.clear()
    config.update(saved)


def run_python(script: str, *args: str, home: Path) -> Any:
    """Runs ``script`` in a fresh interpreter with ``home`` as its home and data folders (no
    ``OY3O_`` or ``XDG_`` variable of this process), and returns its last line of output as
    JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OY3O_", "XDG_"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
