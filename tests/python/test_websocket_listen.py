"""`oy3opy.ai.websocket.listen` with the original README's demo client (websockets, sync)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from conftest import RECORDED_ANSWER

websockets_sync = pytest.importorskip("websockets.sync.client")


def start_listen(fake_base_url: str):
    """Runs listen() on port 0 in a background event loop; returns (address, stop)."""
    from oy3opy.ai import Config
    from oy3opy.ai.websocket import listen

    bound = threading.Event()
    address = {}
    loop = asyncio.new_event_loop()

    def ready(addr: str) -> None:
        address["value"] = addr
        bound.set()

    cfg = Config(providers={"openai": {"base_url": fake_base_url}})
    task_holder = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        task_holder["task"] = loop.create_task(listen("127.0.0.1", 0, None, ready=ready, config=cfg))
        try:
            loop.run_until_complete(task_holder["task"])
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert bound.wait(20), "the server did not start"

    def stop() -> None:
        loop.call_soon_threadsafe(task_holder["task"].cancel)
        thread.join(10)

    return address["value"], stop


def test_the_original_demo_client_talks_to_listen(fake):
    from oy3opy.utils.string import tojson

    address, stop = start_listen(fake.base_url)
    try:
        cookie = {"key": "sk-test"}
        ws = websockets_sync.connect(f"ws://{address}")
        ws.send(tojson({"id": "IdOfThisAi", "model": "openai:smollm2", "cookie": cookie, "prompt": "hello"}))
        ws.send(tojson({"id": "IdOfThisAi", "prompt": "how are you"}))
        ws.send(tojson({"model": "openai:smollm2", "cookie": cookie, "prompt": "hello"}))
        texts, signals = {}, 0
        while signals < 3:
            message = json.loads(ws.recv(timeout=30))
            if message["type"] == "message":
                key = message.get("id", "one-shot")
                texts[key] = texts.get(key, "") + message["message"]
            elif message["type"] == "signal":
                signals += 1
            elif message["type"] == "error":
                pytest.fail(f"error frame: {message}")
        ws.close()
        assert texts["IdOfThisAi"] == RECORDED_ANSWER * 2
        assert texts["one-shot"] == RECORDED_ANSWER
        history = [r["body"]["messages"] for r in fake.requests]
        assert any(len(m) == 3 for m in history), "the second prompt continued the chat"
    finally:
        stop()
