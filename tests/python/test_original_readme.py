"""The original oy3opy README's examples, changed only in model names, keys and endpoints."""

from __future__ import annotations

import asyncio
import json

from conftest import RECORDED_ANSWER


def test_chat_mode_example(fake, tmp_path, capsys):
    from oy3opy.ai import Chat, Events
    from oy3opy.utils.file import io

    with io(tmp_path / "cookie.json", "w") as f:
        json.dump([{"name": "key", "value": "sk-test"}], f)
    with io(tmp_path / "cookie.json") as f:
        cookie = dict([(c["name"], c["value"]) for c in json.load(f)])
    listeners = dict.fromkeys(Events("openai"), [print])
    proxies = None
    from oy3opy.ai import config

    config.providers = {"openai": {"base_url": fake.base_url}}

    async def main():
        chat = Chat("openai:smollm2", cookie, listeners, proxies)
        await chat.update("current time: 2024-05-20 00:00:00")
        async for chunk in chat.send("what is the time on page?"):
            print(chunk, end="", flush=True)
        print(await chat.send_once("what is the realtime?"))

    asyncio.run(main())
    out = capsys.readouterr().out
    assert out.count(RECORDED_ANSWER) >= 2
    assert "'event': 'create'" in out and "'event': 'result'" in out


def test_no_context_example(fake):
    from oy3opy.ai import Config, config, exec, exec_once

    listeners = {"result": [lambda e: None]}
    config.cookie = None
    config.listener = listeners
    config.proxy = None
    config.model = "openai:smollm2"
    config.providers = {"openai": {"base_url": fake.base_url}}

    async def main():
        text = ""
        async for chunk in exec("hello", context=""):
            text += chunk
        once = await exec_once(
            "hello",
            None,
            "openai:smollm2",
            Config({"cookies": {"openai": "sk-test"}, "listeners": {"openai": listeners}, "proxies": {"openai": None}}),
        )
        return text, once

    assert asyncio.run(main()) == (RECORDED_ANSWER, RECORDED_ANSWER)


def test_tasks_chain_example(fake):
    from oy3opy.ai import config, execTasks, execTasksChain_once

    config.cookies["openai"] = "sk-test"
    config.listeners["openai"] = {}
    config.providers = {"openai": {"base_url": fake.base_url}}
    responses = list(
        execTasks(
            [
                {"model": "openai:smollm2", "prompt": "What is Goldbach Conjecture 1+1"},
                {"model": "openai:smollm2", "prompt": "What is Peano axioms 1+1"},
            ]
        )
    )
    assert len(responses) == 2 and all(r == RECORDED_ANSWER for _, r in responses)
    chain = execTasksChain_once(
        [
            [
                {"model": "openai:smollm2", "prompt": "What is Goldbach Conjecture 1+1"},
                {"model": "openai:smollm2", "prompt": "What is Peano axioms 1+1"},
            ],
            [{"model": "openai:smollm2", "prompt": "No Search, what is 1+1 means in math?"}],
        ]
    )
    assert [len(stage) for stage in chain] == [2, 1]
