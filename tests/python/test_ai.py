"""The oy3opy.ai API as users of the original library call it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import warnings

import pytest

from conftest import RECORDED_ANSWER
from oy3opy import ai
from oy3opy.ai import (
    AuthError,
    Chat,
    Config,
    ConfigError,
    Events,
    NetworkError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    config,
    exec,
    exec_once,
    execTasks,
    execTasks_once,
    execTasksChain,
    execTasksChain_once,
)
from oy3opy.utils.file import io
from oy3opy.utils.string import tojson

MODEL = "openai:smollm2"


def test_events_lists_the_names_a_provider_can_emit():
    names = Events("openai")
    assert {"create", "update", "send", "result", "error", "usage", "retry"} <= set(names)
    listeners = dict.fromkeys(Events("local"), [print])
    assert "pull" in listeners
    with pytest.raises(NotFoundError):
        Events("nosuch")


def test_a_chat_streams_with_async_for_and_keeps_history(fake, fake_config):
    async def main():
        chat = Chat(MODEL, config=fake_config)
        await chat.update("current time: 2024-05-20 00:00:00")
        chunks = [c async for c in chat.send("What is 1+1?")]
        second = await chat.send_once("and again?")
        history = chat.history
        await chat.close()
        return chunks, second, history

    chunks, second, history = asyncio.run(main())
    assert "".join(chunks) == RECORDED_ANSWER and len(chunks) > 3
    assert second == RECORDED_ANSWER
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    sent = fake.requests[1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "current time: 2024-05-20 00:00:00"}
    assert sent[2] == {"role": "assistant", "content": RECORDED_ANSWER}


def test_streams_are_sync_iterables_too(fake, fake_config):
    assert "".join(exec("What is 1+1?", None, MODEL, fake_config)) == RECORDED_ANSWER
    with Chat(MODEL, config=fake_config) as chat:
        assert "".join(chat.send("hi")) == RECORDED_ANSWER


def test_exec_once_sends_the_context_and_keeps_no_history(fake, fake_config):
    answer = asyncio.run(exec_once("hello", "Be brief.", MODEL, fake_config))
    asyncio.run(exec_once("again", None, MODEL, fake_config))
    assert answer == RECORDED_ANSWER
    assert fake.requests[0]["body"]["messages"][0]["content"] == "Be brief."
    assert len(fake.requests[1]["body"]["messages"]) == 1


def test_listeners_sync_async_lists_and_star_all_receive_events_in_order(fake, fake_config):
    seen, async_seen = [], []

    async def async_listener(event):
        await asyncio.sleep(0)
        async_seen.append(event["event"])

    listeners = {"*": lambda e: seen.append(e["event"]), "result": [async_listener, lambda e: seen.append("result!")]}

    async def main():
        chat = Chat(MODEL, None, listeners, None, config=fake_config)
        await chat.update("ctx")
        await chat.send_once("hi")

    asyncio.run(main())
    assert seen[:3] == ["create", "update", "send"]
    assert seen[-2:] == ["result!", "result"] or seen[-2:] == ["result", "result!"]
    assert async_seen == ["result"]
    payload = []
    "".join(exec("x", None, MODEL, Config(fake_config, listener={"result": lambda e: payload.append(e)})))
    assert payload[0]["event"] == "result" and payload[0]["message"]["text"] == RECORDED_ANSWER


def test_a_raising_listener_is_reported_and_never_breaks_the_stream(fake, fake_config):
    errors = []

    def broken(event):
        raise ValueError("listener bug")

    cfg = Config(fake_config, listener={"send": broken, "error": lambda e: errors.append(e)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = "".join(exec("x", None, MODEL, cfg))
    assert answer == RECORDED_ANSWER
    assert any("listener bug" in str(w.message) for w in caught)
    assert errors and "listener bug" in errors[0]["message"]["message"]


def test_global_config_is_read_live_and_a_per_call_config_overrides_it(fake, fake_config):
    config.model = "nosuch:model"
    with pytest.raises(NotFoundError):
        "".join(exec("x"))
    config.providers = fake_config.providers
    config.model = MODEL
    assert "".join(exec("x")) == RECORDED_ANSWER
    config.listener = {"result": lambda e: hits.append("global")}
    config.listeners["openai"] = {"result": lambda e: hits.append("model")}
    hits = []
    "".join(exec("x", config=Config(listener={"result": lambda e: hits.append("call")})))
    assert hits == ["global", "call", "model"], "defaults (global, then per-call), then per-model"


def test_httpx_style_proxies_and_cookie_exports_are_accepted(fake, fake_config):
    cookie = [{"name": "_U", "value": "abc", "domain": ".bing.com"}]
    cfg = Config(fake_config, cookies={"openai": "sk-test-key"}, proxies={"openai": {"http://": None}})
    assert "".join(exec("x", None, MODEL, cfg)) == RECORDED_ANSWER
    assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-test-key"
    cfg = Config(fake_config, cookie=cookie)
    "".join(exec("x", None, MODEL, cfg))
    assert fake.requests[1]["headers"]["authorization"] == "Bearer _U=abc"


def test_concurrent_chats_under_gather(fake, fake_config):
    async def one(i):
        return await Chat(MODEL, config=fake_config).send_once(f"q{i}")

    async def main():
        return await asyncio.gather(*(one(i) for i in range(8)))

    assert asyncio.run(main()) == [RECORDED_ANSWER] * 8


def test_breaking_out_of_a_loop_and_cancelling_a_task_stop_the_upstream(fake, fake_config):
    fake.mode = "slow"
    for chunk in exec("x", None, MODEL, fake_config):
        break
    else:
        pytest.fail("no chunk")

    async def consume():
        async for _ in exec("y", None, MODEL, fake_config):
            pass

    async def main():
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    deadline = __import__("time").time() + 5
    while fake.aborted < 2 and __import__("time").time() < deadline:
        __import__("time").sleep(0.05)
    assert fake.aborted == 2


@pytest.mark.parametrize(
    "mode,error",
    [("401", AuthError), ("500", ProviderError), ("429", RateLimitError)],
)
def test_each_failure_raises_its_exception_class_and_fires_error(fake, fake_config, mode, error):
    fake.mode = mode
    errors = []
    with pytest.raises(error) as raised:
        "".join(exec("x", None, MODEL, Config(fake_config, listener={"error": lambda e: errors.append(e)})))
    assert raised.value.code == error.code
    assert errors[0]["message"]["code"] == error.code


def test_bad_models_missing_keys_and_unreachable_providers_raise_clear_errors():
    with pytest.raises(NotFoundError):
        Chat("open ai:gpt")
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        Chat("openai:gpt-4o")
    unreachable = Config(providers={"openai": {"base_url": "http://127.0.0.1:1/v1", "max_retries": 0}})
    with pytest.raises(NetworkError):
        asyncio.run(exec_once("x", None, "openai:x", unreachable))
    assert issubclass(NetworkError, ai.Error)


def test_tasks_yield_pairs_in_completion_order_with_the_callers_dicts(fake, fake_config):
    config.providers = fake_config.providers
    tasks = [{"model": MODEL, "prompt": "a", "extra": 1}, {"model": MODEL, "prompt": "b"}]
    pairs = execTasks_once(tasks)
    assert sorted(p["prompt"] for p, _ in pairs) == ["a", "b"]
    assert any(p is tasks[0] for p, _ in pairs), "task dicts come back as passed"
    assert all(r == RECORDED_ANSWER for _, r in pairs)

    async def collect():
        return [pair async for pair in execTasks(tasks)]

    assert len(asyncio.run(collect())) == 2
    assert ai.exec_tasks_once is execTasks_once


def test_a_failed_task_yields_none_and_the_others_finish(fake, fake_config):
    config.providers = fake_config.providers
    pairs = execTasks_once([{"model": MODEL, "prompt": "ok"}, {"model": "nosuch:x", "prompt": "bad"}])
    responses = {t["prompt"]: r for t, r in pairs}
    assert responses == {"ok": RECORDED_ANSWER, "bad": None}


def test_chains_pass_each_stage_to_the_next_as_context(fake, fake_config):
    config.providers = fake_config.providers
    chain = [
        [{"model": MODEL, "prompt": "Goldbach 1+1", "name": "g"}, {"model": MODEL, "prompt": "Peano 1+1"}],
        [{"model": MODEL, "prompt": "No search, what is 1+1 in math?"}],
    ]
    stages = execTasksChain_once(chain)
    assert [len(s) for s in stages] == [2, 1]
    assert stages[0][0][0] is chain[0][0]
    last = fake.requests[-1]["body"]["messages"][0]["content"]
    assert last == f"[g]: {RECORDED_ANSWER}\n[/g]\n[{MODEL}]: {RECORDED_ANSWER}\n[/{MODEL}]\n"
    assert len(list(execTasksChain(chain))) == 2


def test_the_embedded_local_model_answers_and_follows_its_context():
    answer = asyncio.run(exec_once("What is 1+1?", None, "local:smollm2"))
    assert "2" in answer

    async def named():
        chat = Chat("local:smollm2")
        await chat.update("Your name is Zorblax.")
        return await chat.send_once("What is your name?")

    assert "Zorblax" in asyncio.run(named())


EXIT_MID_ANSWER = """
import sys
from oy3opy.ai import exec
stream = exec("Write a long story about a dragon.", model="local:smollm2")
for n, _ in enumerate(stream, 1):
    if n == int(sys.argv[1]):
        break
"""


def test_the_interpreter_exits_cleanly_while_the_local_model_is_still_answering():
    asyncio.run(exec_once("hi", None, "local:smollm2", Config({"options": {"max_tokens": 1}})))  # pulled once
    env = dict(os.environ, OY3O_STORE="none")
    for run in range(20):
        # The stream is still referenced as the script ends: the model decodes on.
        out = subprocess.run([sys.executable, "-c", EXIT_MID_ANSWER, str(run % 5 + 1)], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (run, out.returncode, out.stderr)


def test_utils_io_creates_folders_and_tojson_keeps_non_ascii(tmp_path):
    path = tmp_path / "a" / "b" / "c.json"
    with io(path, "w") as f:
        f.write(tojson({"k": "é世", "n": [1, 2]}))
    with io(path) as f:
        assert f.read() == '{"k":"é世","n":[1,2]}'


SCRIPT = """
import asyncio, sys
from oy3opy.ai import Chat, Config
cfg = Config(providers={{'openai': {{'base_url': '{base}', 'max_retries': 0}}}})
async def main():
    chat = Chat('openai:x', config=cfg)
    await chat.update('ctx')
    async for _ in chat.send('hi'):
        pass
asyncio.run(main())
"""


def test_two_hundred_short_scripts_exit_without_a_crash(fake):
    script = SCRIPT.format(base=fake.base_url)
    crashes = []
    for i in range(200):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
        if run.returncode != 0:
            crashes.append((i, run.returncode, run.stderr[-300:]))
    assert crashes == []
