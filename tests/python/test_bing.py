"""The ``bing`` model as the original README uses it: ``Chat('bing', cookie, listeners, proxy)``
against the Copilot simulator of the test kit (``oy3o-fake copilot``, a separate process on a
loopback port), through a small HTTP proxy."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import run_python

from oy3opy.ai import AuthError, Chat, Events, NetworkError, config, exec_once
from oy3opy.utils.file import io

ROOT = Path(__file__).resolve().parents[2]


def _fake_binary() -> str:
    """``oy3o-fake``: ``$OY3O_FAKE``, else the release build (``cargo test`` makes it), else
    built now."""
    given = os.environ.get("OY3O_FAKE")
    if given:
        return given
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "oy3o-fake"
    if not binary.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.skip("oy3o-fake is not built and cargo is not available to build it")
        subprocess.run(
            [cargo, "build", "--release", "-p", "oy3o-testkit", "--bin", "oy3o-fake"],
            cwd=ROOT,
            check=True,
        )
    return str(binary)


class Simulator:
    """A running ``oy3o-fake copilot``: its URL, the cookie export it accepts, what it saw."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [_fake_binary(), "copilot"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        self.cookie_export: List[Dict[str, Any]] = json.loads(self.process.stdout.readline())

    def state(self) -> Dict[str, Any]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}/_sim/state", timeout=10) as reply:
            return json.load(reply)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


class ConnectProxy:
    """An HTTP proxy for ``CONNECT`` tunnels and absolute-form requests; records request lines."""

    def __init__(self) -> None:
        self.seen: List[str] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
        else:
            rest_of_url = target.split("://", 1)[1]
            hostport, _, path = rest_of_url.partition("/")
            host, port = hostport.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            rest = head.replace(target.encode(), b"/" + path.encode(), 1)
        upstream.sendall(rest)
        pair = {client: upstream, upstream: client}
        try:
            while True:
                ready, _, _ = select.select(list(pair), [], [], 30)
                if not ready:
                    break
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError
                    pair[sock].sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def copilot():
    sim = Simulator()
    config.providers["bing"] = {"base_url": sim.url, "max_retries": 0}
    yield sim
    sim.close()


@pytest.fixture
def proxy():
    p = ConnectProxy()
    yield p
    p.close()


def _cookie_file(tmp_path: Path, export: List[Dict[str, Any]]) -> Path:
    path = tmp_path / "cookie.json"
    path.write_text(json.dumps(export))
    return path


def test_the_original_readme_chat_streams_continues_and_fires_listeners_through_a_proxy(
    copilot, proxy, tmp_path
):
    # As in the original README: a cookie export read into {name: value}.
    with io(str(_cookie_file(tmp_path, copilot.cookie_export))) as f:
        cookie = dict([(c["name"], c["value"]) for c in json.load(f)])
    seen: List[Dict[str, Any]] = []
    listeners = dict.fromkeys(Events("bing"), [seen.append])

    async def main():
        chat = Chat("bing", cookie, listeners, proxy.url)
        await chat.update("current time: 2024-05-20 00:00:00")
        chunks = [chunk async for chunk in chat.send("what is the time on page?")]
        once = await chat.send_once("what is the realtime?")
        await chat.close()
        return chunks, once

    chunks, once = asyncio.run(main())
    assert len(chunks) > 3, "streamed in pieces"
    assert "".join(chunks) == (
        "Turn 1: you said what is the time on page? (page: current time: 2024-05-20 00:00:00)"
    )
    assert once.startswith("Turn 2: you said what is the realtime?"), "the server kept turn 1"

    names = [e["event"] for e in seen]
    for name in ("create", "update", "send", "title", "reply_suggestion", "result"):
        assert name in names, f"{name} not in {names}"
    assert all(e["model"] == "bing:chat" for e in seen)
    assert next(e for e in seen if e["event"] == "title")["message"]["text"].startswith("Chat:")

    state = copilot.state()
    assert state["starts"] == 1
    first, second = state["sent"]
    assert first["conversation"] == second["conversation"]
    assert first["context"] == "current time: 2024-05-20 00:00:00" and second["context"] is None
    assert set(first["cookies"]) == {"MUID", "cf_clearance", "__Host-copilot-anon"}
    host = copilot.url.split("://", 1)[1]
    assert f"CONNECT {host}" in proxy.seen, proxy.seen
    assert f"POST {copilot.url}/c/api/start" in proxy.seen, proxy.seen


def test_copilot_is_another_name_for_bing_and_lists_the_same_events():
    assert Events("copilot") == Events("bing")
    assert {"reply_suggestion", "reasoning", "citation", "title", "error"} <= set(Events("bing"))


def test_wrong_cookies_raise_auth_error_without_showing_them(copilot):
    stale = {"MUID": "stale-muid-value-99", "cf_clearance": "stale-clearance-99"}
    with pytest.raises(AuthError) as caught:
        asyncio.run(exec_once("hello", None, "bing", {"cookie": stale}))
    assert "export them again" in str(caught.value)
    assert "stale-" not in str(caught.value)


def test_a_browser_check_raises_auth_error_naming_cf_clearance(copilot):
    errors: List[Dict[str, Any]] = []
    chat = Chat("bing", copilot.cookie_export, {"error": errors.append})
    with pytest.raises(AuthError) as caught:
        "".join(chat.send("hello [challenge]"))
    assert "cf_clearance" in str(caught.value)
    assert errors and errors[0]["message"]["code"] == "auth"


def test_a_connection_lost_mid_answer_raises_network_error(copilot):
    chat = Chat("bing", copilot.cookie_export)
    received: List[str] = []
    with pytest.raises(NetworkError):
        for chunk in chat.send("count for me [drop]"):
            received.append(chunk)
    assert "".join(received) == "Turn 1: ", "the text before the cut arrived"


RESUME = r"""
import asyncio, json, sys
from oy3opy.ai import Chat, Config

url, cookie, store, prompt = sys.argv[1:5]
cfg = Config({"providers": {"bing": {"base_url": url, "max_retries": 0}}, "store": store})

async def main():
    chat = Chat("bing", json.loads(cookie), config=cfg, name="copilot-resumed")
    answer = await chat.send_once(prompt)
    print(json.dumps({"answer": answer, "history": chat.history}))

asyncio.run(main())
"""


def test_a_named_bing_chat_resumes_in_another_process_sending_only_the_new_prompt(copilot, tmp_path):
    def run(prompt: str) -> Dict[str, Any]:
        store = f"sqlite:{tmp_path / 'b.db'}"
        return run_python(RESUME, copilot.url, json.dumps(copilot.cookie_export), store, prompt, home=tmp_path)

    first = run("one")
    second = run("two")
    assert first["answer"].startswith("Turn 1: you said one")
    assert second["answer"].startswith("Turn 2: you said two"), "the service's conversation went on"
    assert [m["content"] for m in second["history"]][::2] == ["one", "two"]
    state = copilot.state()
    assert state["starts"] == 1, "the stored conversation id was used, no new conversation"
    first_sent, second_sent = state["sent"]
    assert first_sent["conversation"] == second_sent["conversation"]
    assert second_sent["text"] == "two", "only the new prompt was sent"
