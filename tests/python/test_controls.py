"""Request controls from Python (issue 20): ``reasoning=``, ``schema=`` (a dict or a class with
``model_json_schema()``), ``search=``, ``stop=``, ``extra_body=`` on ``Chat``, ``send`` and
``exec``, checked in the request the fake OpenAI upstream receives."""

from __future__ import annotations

import asyncio
import json

import pytest

from oy3opy.ai import BadRequestError, Chat, ProviderError, exec_once

MODEL = "openai:gpt-4o-mini"
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


class City:
    """Stands in for a pydantic model: only ``model_json_schema()`` is used."""

    @classmethod
    def model_json_schema(cls):
        return {"title": "City", **CITY}


def test_schema_answer_is_validated_and_controls_reach_the_request(fake, fake_config):
    fake.mode = "answers"
    fake.answers = ['{"city": 7}', '{"city": "Oslo"}']

    async def main():
        chat = Chat(MODEL, config=fake_config, reasoning="high", stop="END")
        return await chat.send_once("Where?", schema=City, search=True, extra_body={"service_tier": "flex"})

    answer = asyncio.run(main())
    assert json.loads(answer) == {"city": "Oslo"}
    assert len(fake.requests) == 2, "the invalid answer is asked for once more"
    body = fake.requests[1]["body"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": {"title": "City", **CITY}, "strict": True},
    }
    assert body["reasoning_effort"] == "high"
    assert body["stop"] == ["END"]
    assert body["web_search_options"] == {}
    assert body["service_tier"] == "flex"


def test_two_invalid_answers_raise_naming_the_path(fake, fake_config):
    fake.mode = "answers"
    fake.answers = ['{"city": 7}', '{"city": 8}']
    with pytest.raises(ProviderError) as e:
        asyncio.run(exec_once("Where?", None, MODEL, fake_config, schema=CITY))
    assert '/city: 8 is not of type "string"' in str(e.value)
    assert e.value.code == "provider"


def test_bad_controls_are_bad_request_errors_before_anything_is_sent(fake, fake_config):
    with pytest.raises(BadRequestError, match="low, medium or high"):
        asyncio.run(exec_once("x", None, MODEL, fake_config, reasoning="max"))
    with pytest.raises(BadRequestError, match="schema"):
        asyncio.run(exec_once("x", None, MODEL, fake_config, schema={"type": "nosuch"}))
    with pytest.raises(BadRequestError, match='may not set "model"'):
        asyncio.run(exec_once("x", None, MODEL, fake_config, extra_body={"model": "other"}))
    with pytest.raises(TypeError, match="schema must be"):
        asyncio.run(exec_once("x", None, MODEL, fake_config, schema="not a schema"))
    assert fake.requests == []
