"""Python streaming throughput: oy3opy's `async for chunk in exec(...)` against the official
`openai` SDK's streaming, both reading the same 100,000-chunk Chat Completions stream from one
local fake server, in one run. Prints chunks/s of each and the ratio.

Run: `python3 bench/python_stream.py` (after installing the package; `scripts/bench` does both).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from fake_openai import serve, sse_body

CHUNKS = 100_000
ROUNDS = 3


BODY = sse_body(f"t{i} " for i in range(CHUNKS))


async def oy3o_round(base_url: str) -> float:
    from oy3opy.ai import Config, exec

    cfg = Config(providers={"openai": {"base_url": base_url}})
    started = time.perf_counter()
    n = 0
    async for _ in exec("bench", None, "openai:bench", cfg):
        n += 1
    elapsed = time.perf_counter() - started
    assert n == CHUNKS, n
    return elapsed


async def sdk_round(base_url: str) -> float:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="sk-bench")
    started = time.perf_counter()
    n = 0
    stream = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "bench"}], stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            n += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert n == CHUNKS, n
    return elapsed


def main() -> None:
    server, base_url = serve(BODY)
    ours = [asyncio.run(oy3o_round(base_url)) for _ in range(ROUNDS)]
    theirs = [asyncio.run(sdk_round(base_url)) for _ in range(ROUNDS)]
    o = CHUNKS / statistics.median(ours)
    s = CHUNKS / statistics.median(theirs)
    print(f"chunks per run: {CHUNKS}, rounds: {ROUNDS} (medians)")
    print(f"oy3opy async for exec(): {o:>10,.0f} chunks/s")
    print(f"openai SDK stream:       {s:>10,.0f} chunks/s")
    print(f"ratio oy3opy / SDK:      {o / s:>10.1f}x")
    server.shutdown()


if __name__ == "__main__":
    main()
