"""Python streaming throughput: oy3opy's `async for chunk in exec(...)` against the official
`openai` SDK's streaming, both reading the same 100,000-chunk Chat Completions stream from one
local fake server, in one run. Prints chunks/s of each and the ratio.

Run: `python3 bench/python_stream.py` (after installing the package; `scripts/bench` does both).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNKS = 100_000
ROUNDS = 3


def body() -> bytes:
    head = '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,"model":"bench","choices":[{"index":0,"delta":'
    parts = [f'data: {head}{{"role":"assistant","content":""}},"finish_reason":null}}]}}\n\n']
    for i in range(CHUNKS):
        parts.append(f'data: {head}{json.dumps({"content": f"t{i} "})},"finish_reason":null}}]}}\n\n')
    parts.append(f'data: {head}{{}},"finish_reason":"stop"}}]}}\n\ndata: [DONE]\n\n')
    return "".join(parts).encode()


BODY = body()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # noqa: D102
        pass

    def do_POST(self):  # noqa: N802, D102
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


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
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
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
