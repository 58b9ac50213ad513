"""The Python face as a Python developer expects it (issue 25) and on the engine's one
conversation core (issue 17): each test names the behaviour it pins."""

from __future__ import annotations

import asyncio
import builtins
import time
import typing
import warnings

import pytest
from conftest import RECORDED_ANSWER, run_python

from oy3opy.ai import (
    Chat,
    Config,
    ConfigError,
    Events,
    NetworkError,
    NotFoundError,
    config,
    events,
    exec,
    exec_once,
    execTasks,
    execTasks_async,
    execTasks_once,
    execTasksChain_once,
)

MODEL = "openai:gpt-4o-mini"


def wait_until(check, seconds=5.0):
    deadline = time.time() + seconds
    while not check() and time.time() < deadline:
        time.sleep(0.02)
    return check()


def system_prompt(request):
    messages = request["body"]["messages"]
    return messages[0]["content"] if messages[0]["role"] == "system" else None


# -- issue 25, major ----------------------------------------------------------------------------


def test_breaking_out_of_a_loop_stops_the_request_while_the_stream_is_still_referenced(fake, fake_config):
    fake.mode = "slow"
    stream = exec("x", None, MODEL, fake_config)
    for _ in stream:
        break
    assert wait_until(lambda: fake.aborted == 1, 3), "the upstream was left open"
    assert stream is not None  # still referenced

    async def main():
        s = exec("y", None, MODEL, fake_config)
        async for _ in s:
            break
        await asyncio.sleep(0)
        return s

    kept = asyncio.run(main())
    assert wait_until(lambda: fake.aborted == 2, 3), "the upstream was left open (async for)"
    assert kept is not None


def test_a_chat_turn_whose_consumer_stops_ends_at_once_as_cancelled_and_the_next_turn_does_not_wait(fake, fake_config):
    fake.mode = "slow"  # ten seconds of answer

    async def main():
        chat = Chat(MODEL, config=fake_config)
        s = chat.send("a")
        async for _ in s:
            break
        fake.mode = "stream"
        started = time.time()
        answer = await chat.send_once("b")
        return chat.history, answer, time.time() - started, s

    history, answer, took, _ = asyncio.run(main())
    assert answer == RECORDED_ANSWER
    assert took < 3, f"the second turn waited {took:.1f}s for the first"
    assert [m["content"] for m in history] == ["b", RECORDED_ANSWER], "a cut turn is not in the history"
    assert [m["content"] for m in fake.requests[-1]["body"]["messages"]] == ["b"]


CUT = r"""
import asyncio, json, sys
from oy3opy.ai import Chat, Config

base, name, mode = sys.argv[1:4]
cfg = Config({"providers": {"openai": {"base_url": base, "max_retries": 0}}, "options": {"max_tokens": 24}})

async def main():
    chat = Chat("openai:gpt-4o-mini", config=cfg, name=name)
    before = chat.history
    if mode == "cut":
        async for _ in chat.send("cut me"):
            break
    else:
        await chat.send_once("whole")
    print(json.dumps({"before": before, "after": chat.history}))

asyncio.run(main())
"""


def test_a_turn_cut_by_the_consumer_is_in_neither_the_live_nor_the_resumed_history(fake, tmp_path):
    whole = run_python(CUT, fake.base_url, "one-rule", "whole", home=tmp_path)
    assert [m["content"] for m in whole["after"]] == ["whole", RECORDED_ANSWER]
    fake.mode = "slow"
    cut = run_python(CUT, fake.base_url, "one-rule", "cut", home=tmp_path)
    assert cut["after"] == whole["after"], "live: the cut turn is not in the history"
    fake.mode = "stream"
    resumed = run_python(CUT, fake.base_url, "one-rule", "whole", home=tmp_path)
    assert resumed["before"] == whole["after"], "resumed: the cut turn is not in the history either"


def test_per_model_listeners_fire_in_tasks_and_chains_with_the_model_and_task_index(fake, fake_config):
    config.providers = fake_config.providers
    seen = []
    config.listeners["openai"] = dict.fromkeys(Events("openai"), [seen.append])
    execTasks_once([{"model": MODEL, "prompt": "a"}, {"model": MODEL, "prompt": "b"}])
    results = [e for e in seen if e["event"] == "result"]
    assert sorted(e["task"] for e in results) == [0, 1]
    assert {e["model"] for e in results} == {MODEL}
    assert {e["task"] for e in seen if e["event"] == "task_done"} == {0, 1}

    seen.clear()
    execTasksChain_once([[{"model": MODEL, "prompt": "a"}], [{"model": MODEL, "prompt": "b"}]])
    results = [e for e in seen if e["event"] == "result"]
    assert [(e["stage"], e["task"]) for e in results] == [(0, 0), (1, 0)]


def test_the_most_specific_context_wins_per_call_then_per_model_then_global(fake, fake_config):
    config.contexts["openai"] = "G"
    config.context = "global"

    async def main():
        await Chat(MODEL, config=fake_config, context="E").send_once("x")
        await exec_once("x", None, MODEL, Config(fake_config, context="P"))
        await exec_once("x", None, MODEL, fake_config)
        await exec_once("x", "A", MODEL, Config(fake_config, context="P"))

    asyncio.run(main())
    assert [system_prompt(r) for r in fake.requests] == ["E", "P", "G", "A"]


# -- issue 25, minor ----------------------------------------------------------------------------


def test_a_closed_chat_refuses_send_and_update_before_firing_anything(fake, fake_config):
    fired = []

    async def main():
        chat = Chat(MODEL, config=fake_config, listeners={"*": fired.append})
        await chat.close()
        fired.clear()
        with pytest.raises(ConfigError, match="closed"):
            await chat.send_once("x")
        with pytest.raises(ConfigError, match="closed"):
            await chat.update("c")

    asyncio.run(main())
    assert fired == [] and fake.requests == []


def test_type_mistakes_raise_type_error_naming_the_place(fake_config):
    with pytest.raises(TypeError):
        asyncio.run(exec_once(None, None, MODEL, fake_config))
    with pytest.raises(TypeError, match="proxy"):
        exec("x", None, MODEL, Config(fake_config, proxies={"openai": 12}))
    with pytest.raises(TypeError, match="task 1 has no 'prompt'"):
        execTasks_once([{"model": MODEL, "prompt": "a"}, {"model": MODEL}], fake_config)
    with pytest.raises(TypeError):
        exec("x", None, MODEL, "not a config")


def test_listeners_are_checked_when_given_and_events_lists_task_events(fake_config):
    with pytest.raises(TypeError, match="callable"):
        Chat(MODEL, config=fake_config, listeners={"result": "notcallable"})
    with pytest.raises(ValueError, match="Invalid event 'resutl'"):
        exec("x", None, MODEL, Config(fake_config, listener={"resutl": print}))
    assert {"task_start", "task_done", "stage_start", "stage_done"} <= set(Events("openai"))


def test_async_listeners_run_before_a_synchronous_loop_goes_on_inside_a_running_loop(fake, fake_config):
    log = []

    async def remember(event):
        await asyncio.sleep(0)
        log.append(event["event"])

    async def main():
        chunks = list(exec("x", None, MODEL, Config(fake_config, listener={"result": remember})))
        return chunks, list(log)

    chunks, logged = asyncio.run(main())
    assert "".join(chunks) == RECORDED_ANSWER
    assert logged == ["result"], "the async listener ran before the loop went on"


def test_exceptions_are_also_the_standard_ones_and_star_import_keeps_the_builtins():
    import oy3opy.ai as ai

    assert issubclass(ai.TimeoutError, builtins.TimeoutError)
    assert issubclass(ai.CancelledError, asyncio.CancelledError)
    assert issubclass(ai.NetworkError, OSError)
    assert str(ai.NetworkError("down")) == "down" and ai.NetworkError("down").code == "network"
    scope: dict = {}
    exec_builtin = builtins.exec
    exec_builtin("from oy3opy.ai import *", scope)
    assert "TimeoutError" not in scope
    assert ai.events is ai.Events


def test_native_errors_are_the_package_classes_with_a_code():
    with pytest.raises(ConfigError) as bad:
        Chat("openai:x", proxy="htp://127.0.0.1:3128")
    assert bad.value.code == "config" and not str(bad.value).startswith("[")
    with pytest.raises(NotFoundError) as unknown:
        exec("hi", model="nosuch:m")  # raised at once, before iterating
    assert unknown.value.code == "not_found"


@pytest.mark.parametrize("model", ["nosuch:m", "gtp-4o", "open ai:gpt", "openai:", ":gpt"])
def test_a_model_name_that_names_no_model_is_a_not_found_error_whether_unknown_or_unreadable(model):
    for attempt in (lambda: Chat(model), lambda: exec("hi", model=model), lambda: asyncio.run(exec_once("hi", None, model))):
        with pytest.raises(NotFoundError) as raised:
            attempt()
        assert raised.value.code == "not_found"
        assert isinstance(raised.value, LookupError)


def test_the_original_config_keyword_is_accepted(fake, fake_config):
    assert asyncio.run(exec_once("hi", None, MODEL, _config=fake_config)) == RECORDED_ANSWER


def test_repr_of_a_config_hides_credentials():
    cfg = Config(cookie="sk-secret", cookies={"openai": "sk-other"}, providers={"x": {"api_key": "sk-3"}})
    assert "sk-" not in repr(cfg)


def test_config_refuses_misspelled_keys_and_wrong_map_types():
    cfg = Config()
    with pytest.raises(AttributeError, match="model"):
        cfg.modle = "x"
    with pytest.raises(AttributeError):
        Config({"modle": "x"})
    cfg = Config({"cookies": None})
    cfg.cookies["x"] = "y"
    assert cfg.cookies == {"x": "y"}
    with pytest.raises(TypeError, match="cookies must be a mapping"):
        Config({"cookies": "str"})


def test_a_name_without_a_store_says_so(fake, fake_config):
    with pytest.warns(RuntimeWarning, match="not kept"):
        Chat(MODEL, config=Config(fake_config, store="none"), name="x")


def test_streams_and_task_items_are_typed():
    from oy3opy.ai._stream import ItemStream, TextStream

    assert typing.get_type_hints(TextStream.__next__)["return"] is str
    assert typing.get_type_hints(TextStream.__anext__)["return"] is str
    returned = typing.get_type_hints(execTasks)["return"]
    assert typing.get_origin(returned) is ItemStream


def test_awaitable_task_forms_keep_the_event_loop_running(fake, fake_config):
    fake.mode = "slow"
    config.providers = fake_config.providers
    ticks = []

    async def ticker():
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    async def main():
        t = asyncio.ensure_future(ticker())
        try:
            return await asyncio.wait_for(execTasks_async([{"model": MODEL, "prompt": "a"}]), 0.5)
        except asyncio.TimeoutError:
            return None
        finally:
            t.cancel()

    asyncio.run(main())
    assert len(ticks) >= 10, ticks


def test_the_event_model_is_the_resolved_reference_on_every_entry_point(fake, fake_config):
    seen = []
    config.listener = {"result": seen.append}
    config.providers = fake_config.providers

    async def main():
        await Chat("openai", config=fake_config).send_once("x")
        await exec_once("x", None, "openai")
        execTasks_once([{"model": "openai", "prompt": "x"}])

    asyncio.run(main())
    assert [e["model"] for e in seen] == [MODEL] * 3


# -- issue 17, the Python parts -----------------------------------------------------------------


def test_model_names_resolve_through_the_engine_with_aliases_and_oy3o_model(fake, fake_config, monkeypatch):
    seen = []
    config.aliases["fast"] = MODEL
    config.listeners["fast"] = {"result": seen.append}
    monkeypatch.setenv("OY3O_MODEL", "fast")

    async def main():
        chat = Chat(config=fake_config)
        await chat.send_once("x")
        await exec_once("x", None, None, fake_config)
        return chat.model

    assert asyncio.run(main()) == MODEL
    assert len(seen) == 2, "listeners under the alias the engine resolved fire"


def test_a_per_call_config_merges_provider_sections_field_by_field(fake, fake_config):
    config.providers = fake_config.providers
    call = Config(providers={"openai": {"headers": {"x-test": "1"}}}, options={"temperature": 0.5})
    assert asyncio.run(exec_once("x", None, MODEL, call)) == RECORDED_ANSWER
    request = fake.requests[-1]
    assert request["headers"]["x-test"] == "1", "the call's header is sent"
    assert request["body"]["max_tokens"] == 24, "the global options stay"
    assert request["body"]["temperature"] == 0.5


def test_config_errors_come_from_the_engine_with_the_key(fake_config):
    with pytest.raises(ConfigError, match="base_urll"):
        exec("x", None, MODEL, Config(providers={"openai": {"base_urll": "http://x"}}))


def test_the_store_variable_comes_before_the_config_as_for_the_command(fake, fake_config, tmp_path, monkeypatch):
    monkeypatch.setenv("OY3O_STORE", "none")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Chat(MODEL, config=Config(fake_config, store=f"sqlite:{tmp_path / 'x.db'}"), name="n")
    assert not (tmp_path / "x.db").exists()
    assert any("not kept" in str(w.message) for w in caught)


def test_two_chats_on_one_name_in_one_process_share_one_conversation(fake, fake_config, tmp_path):
    cfg = Config(fake_config, store=f"sqlite:{tmp_path / 'shared.db'}")

    async def main():
        a = Chat(MODEL, config=cfg, name="together")
        b = Chat(MODEL, config=cfg, name="together")
        await a.send_once("one")
        await b.send_once("two")
        return a.history, b.history

    a, b = asyncio.run(main())
    assert a == b and [m["content"] for m in a][::2] == ["one", "two"]


def test_unnamed_tasks_on_one_model_get_unique_labels_in_the_next_stage(fake, fake_config):
    config.providers = fake_config.providers
    execTasksChain_once([[{"model": MODEL, "prompt": "a"}, {"model": MODEL, "prompt": "b"}], [{"model": MODEL, "prompt": "c"}]])
    context = fake.requests[-1]["body"]["messages"][0]["content"]
    assert context == f"[{MODEL}]: {RECORDED_ANSWER}\n[/{MODEL}]\n[{MODEL}#2]: {RECORDED_ANSWER}\n[/{MODEL}#2]\n"


def test_errors_give_python_hints_not_command_line_flags():
    from oy3opy.ai import AuthError

    with pytest.raises(AuthError) as missing:
        Chat("openai:gpt-4o")
    assert "--key" not in str(missing.value) and "cookie=" in str(missing.value)


def test_an_unsupported_proxy_scheme_is_a_config_error_before_anything_is_sent(fake, fake_config):
    for proxy in ("socks://127.0.0.1:1", "htp://127.0.0.1:1", "ftp://127.0.0.1:1"):
        with pytest.raises(ConfigError):
            exec("x", None, MODEL, Config(fake_config, proxy=proxy))
    assert fake.requests == []


def test_an_empty_proxy_turns_the_global_proxy_off_for_one_call(fake, fake_config):
    # A global proxy nobody listens on: a request through it fails.
    config.proxy = "http://127.0.0.1:1"
    config.proxies["openai"] = "http://127.0.0.1:1"
    assert "".join(exec("x", None, MODEL, Config(fake_config, proxy=""))) == RECORDED_ANSWER
    assert asyncio.run(exec_once("x", None, MODEL, Config(fake_config, proxy=""))) == RECORDED_ANSWER
    assert len(fake.requests) == 2
    with pytest.raises(NetworkError):
        "".join(exec("x", None, MODEL, fake_config))
    assert len(fake.requests) == 2
