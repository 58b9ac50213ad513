"""Named chats in the store (issue #10): ``Chat(name=...)`` resumes across Python processes with
its model and history, and a chat without a name writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RECORDED_ANSWER, run_python

SCRIPT = r"""
import asyncio, json, sys
from oy3opy.ai import Chat, Config

base, model, name, prompt = sys.argv[1:5]
cfg = Config({"providers": {"openai": {"base_url": base, "max_retries": 0}}, "options": {"max_tokens": 24}})

async def main():
    chat = Chat(model or None, config=cfg, name=name or None)
    before = chat.history
    answer = await chat.send_once(prompt)
    print(json.dumps({"model": chat.model, "before": before, "answer": answer, "after": chat.history}))
    await chat.close()

asyncio.run(main())
"""


def run(tmp_path: Path, fake, model: str, name: str, prompt: str) -> dict:
    return run_python(SCRIPT, fake.base_url, model, name, prompt, home=tmp_path)


def test_a_named_chat_resumes_in_another_process_with_its_history(fake, tmp_path):
    db = tmp_path / "data" / "oy3o" / "oy3o.db"
    plain = run(tmp_path, fake, "openai:gpt-4o-mini", "", "unnamed")
    assert plain["answer"] == RECORDED_ANSWER
    assert not db.exists(), "a chat without a name keeps nothing"

    first = run(tmp_path, fake, "openai:gpt-4o-mini", "trip", "one")
    assert first["before"] == []
    assert db.exists()

    # No model given: the stored chat's model comes back, with its history.
    second = run(tmp_path, fake, "", "trip", "two")
    assert second["model"] == "openai:gpt-4o-mini"
    assert second["before"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": RECORDED_ANSWER},
    ]
    sent = [m["content"] for m in fake.requests[-1]["body"]["messages"]]
    assert sent == ["one", RECORDED_ANSWER, "two"]
    assert [m["content"] for m in second["after"]] == ["one", RECORDED_ANSWER, "two", RECORDED_ANSWER]

    # Another name is another chat.
    other = run(tmp_path, fake, "openai:gpt-4o-mini", "elsewhere", "three")
    assert other["before"] == []


def test_a_store_that_cannot_be_reached_is_a_network_error(fake_config):
    from oy3opy.ai import Chat, Config, NetworkError

    cfg = Config({**fake_config, "store": "postgres://oy3o@127.0.0.1:1/oy3o"})
    try:
        Chat("openai:gpt-4o-mini", config=cfg, name="x")
    except NetworkError as exc:
        assert "store" in str(exc) and exc.code == "network"
    else:
        raise AssertionError("an unreachable store must raise NetworkError")


def test_store_none_makes_a_named_chat_a_plain_one(fake, fake_config, tmp_path):
    import asyncio

    from oy3opy.ai import Chat, Config

    cfg = Config({**fake_config, "store": "none"})

    async def main():
        with pytest.warns(RuntimeWarning, match="not kept"):
            chat = Chat("openai:gpt-4o-mini", config=cfg, name="x")
        assert chat.history == []
        assert await chat.send_once("hi") == RECORDED_ANSWER
        return chat.history

    assert [m["content"] for m in asyncio.run(main())] == ["hi", RECORDED_ANSWER]


BLOCKER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_a_store_too_busy_to_write_is_a_store_event_and_loses_no_turn(fake, fake_config, tmp_path):
    import asyncio
    import sqlite3

    from oy3opy.ai import Chat, Config

    db = tmp_path / "oy3o.db"
    cfg = Config({**fake_config, "store": f"sqlite:{db}"})
    seen = []

    async def main():
        chat = Chat("openai:gpt-4o-mini", config=cfg, name="busy", listeners={"store": seen.append})
        assert await chat.send_once("one") == RECORDED_ANSWER
        # Another program holds the database's write lock longer than an answer waits for it
        # (another process: SQLite's file locks do not part two connections of one process).
        blocker = subprocess.Popen(
            [sys.executable, "-c", BLOCKER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert blocker.stdout.readline().strip() == "locked"
            assert await chat.send_once("two") == RECORDED_ANSWER, "the answer is whole"
        finally:
            blocker.communicate("\n", timeout=30)
        assert await chat.send_once("three") == RECORDED_ANSWER
        await chat.close()

    asyncio.run(main())
    assert [e["message"]["status"] for e in seen] == ["pending"], seen
    assert "3s" in seen[0]["message"]["error"]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT prompt, answer, state FROM turns ORDER BY seq").fetchall()
    assert rows == [(p, RECORDED_ANSWER, "done") for p in ("one", "two", "three")]
