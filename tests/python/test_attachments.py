"""Attachments from Python: ``Chat.send(prompt, attachments=[...])`` and ``exec(...,
attachments=[...])`` with paths, bytes, ``(bytes, mime)``, dicts and URLs, checked by the
engine's loader; a bad one raises the package's exception naming it, with nothing sent."""

from __future__ import annotations

import asyncio
import base64
import pathlib
import socket

import pytest

from oy3opy.ai import BadRequestError, Chat, Config, NetworkError, NotFoundError, exec

MODEL = "openai:gpt-4o-mini"

#: A 1×1 PNG, 69 bytes (TOOLS.md §7.0).
PNG1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
PNG = base64.b64decode(PNG1)
DATA_URL = f"data:image/png;base64,{PNG1}"


def image_urls(request):
    """The ``image_url`` URLs of the last user message of an upstream request."""
    content = request["body"]["messages"][-1]["content"]
    return [p["image_url"]["url"] for p in content if isinstance(p, dict) and p["type"] == "image_url"]


def test_chat_send_takes_paths_bytes_tuples_and_dicts_and_the_provider_gets_the_image(fake, fake_config, tmp_path):
    dot = tmp_path / "dot.png"
    dot.write_bytes(PNG)

    async def main():
        chat = Chat(MODEL, config=fake_config)
        await chat.send("what is this?", attachments=[str(dot), pathlib.Path(dot)]).atext()
        await chat.send_once("and these?", attachments=[PNG, (PNG, "image/png"), {"data": PNG, "name": "d.png"}])
        return chat.history

    history = asyncio.run(main())
    assert image_urls(fake.requests[0]) == [DATA_URL, DATA_URL]
    assert fake.requests[0]["body"]["messages"][-1]["content"][0] == {"type": "text", "text": "what is this?"}
    assert image_urls(fake.requests[1]) == [DATA_URL] * 3
    # The first turn (and its images) went again as history.
    first = fake.requests[1]["body"]["messages"][0]["content"]
    assert [p["type"] for p in first] == ["text", "image_url", "image_url"]
    assert [m["content"] for m in history if m["role"] == "user"] == ["what is this?", "and these?"]


def test_exec_takes_attachments_and_image_urls_go_as_urls(fake, fake_config):
    exec("look", None, MODEL, fake_config, attachments=["https://images.example/cat.png"]).text()
    assert image_urls(fake.requests[0]) == ["https://images.example/cat.png"]


def test_bad_attachments_raise_naming_the_attachment_and_nothing_is_sent_or_kept(fake, fake_config, tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/cat.png"
    closed.close()
    small = Config({"providers": fake_config["providers"], "attachments": {"max_image_bytes": 32}})

    async def main():
        chat = Chat(MODEL, config=fake_config)
        await chat.send_once("first", attachments=[PNG])
        cases = [
            ([PNG, tmp_path / "nosuch.png"], NotFoundError, r"attachments\[1\].*no such file"),
            ([folder], BadRequestError, r"attachments\[0\].*not a file"),
            ([(PNG, "image/jpeg")], BadRequestError, r"attachments\[0\].*labelled image/jpeg"),
            ([(PNG, "image/x-bmp")], BadRequestError, r"attachments\[0\].*image/x-bmp"),
            ([b"\x00\x9f\x92\x96\x01"], BadRequestError, r"attachments\[0\].*cannot tell what"),
            ([{"data": "iVBOR"}], BadRequestError, r"attachments\[0\].*'data' must be bytes"),
            ([3.5], BadRequestError, r"attachments\[0\].*cannot attach a float"),
        ]
        for attachments, error, why in cases:
            with pytest.raises(error, match=why):
                chat.send("second", attachments=attachments)
        sent = len(fake.requests)
        too_big = Chat(MODEL, config=small)
        with pytest.raises(BadRequestError, match=r"attachments\[0\].*max_image_bytes"):
            too_big.send("x", attachments=[PNG])
        # A model on a compatible server takes image bytes only: the URL is fetched first.
        llava = Chat("openai:llava-local", config=fake_config)
        with pytest.raises(NetworkError, match="cannot fetch the attachment at"):
            await llava.send_once("x", attachments=[dead_url])
        assert len(fake.requests) == sent
        return chat.history

    history = asyncio.run(main())
    assert len(fake.requests) == 1, "only the first prompt went upstream"
    assert len(history) == 2 and history[0]["content"] == "first"


def test_the_openai_sdk_sends_an_image_url_part_through_our_server(fake):
    """The official ``openai`` SDK against ``oy3o serve``'s HTTP face: a data-URL image reaches
    the upstream in OpenAI's shape; a broken one is a 400 naming the content part, with nothing
    sent."""
    openai_sdk = pytest.importorskip("openai")
    from test_websocket_listen import Served

    served = Served(fake.base_url)
    try:
        client = openai_sdk.OpenAI(base_url=f"http://{served.address}/v1", api_key="not-needed", max_retries=0)
        stream = client.chat.completions.create(
            model="openai:gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": DATA_URL}},
            ]}],
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert image_urls(fake.requests[0]) == [DATA_URL]
        with pytest.raises(openai_sdk.BadRequestError) as refused:
            client.chat.completions.create(
                model="openai:gpt-4o-mini",
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": "and this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}},
                ]}],
            )
        assert "messages[0].content[1]" in str(refused.value) and "base64" in str(refused.value)
        assert len(fake.requests) == 1
    finally:
        served.stop()
