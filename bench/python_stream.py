"""Python streaming: oy3opy's `async for chunk in exec(...)` against two peers in one run, all
reading the same Chat Completions streams from the same local fake server (zero delay, in a
process of its own):

- TensorZero's embedded gateway (`tensorzero` from the Python package registry: its Rust gateway
  runs inside the Python process, `AsyncTensorZeroGateway.build_embedded`, observability off),
  with an OpenAI-compatible provider whose `api_base` is the fake;
- the official `openai` SDK's `async for` over `chat.completions.create(stream=True)`.

Each of oy3opy and TensorZero is read through both its faces, `async for` and plain `for`
(TensorZero's `TensorZeroGateway`, same config). Two figures for each (the ones issue 23
names):
- chunks/s on one 20,000-chunk stream (median of ROUNDS streams);
- time per 64-chunk answer: request, every chunk, end of stream (median of ANSWERS answers,
  the consumers taking turns answer by answer, so machine load falls on all of them alike).

Beside each wall-time figure, the CPU time this process spent on it (all its threads; the fake
is another process), which the load other builds put on a shared machine moves less. Prints
both figures and the ratios face by face, and oy3opy's faster face against
TensorZero's faster face (goal: ≥ 5× on both figures).

Run: `python3 bench/python_stream.py` (after installing the packages; `scripts/bench` installs
the pinned `tensorzero` and `openai` and this checkout's `oy3opy`).
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fake_openai import spawn

STREAM_CHUNKS = 20_000
ROUNDS = 5
ANSWER_CHUNKS = 64
ANSWERS = int(os.environ.get("OY3O_BENCH_ANSWERS", "300"))
MESSAGES = [{"role": "user", "content": "bench"}]


def tensorzero_config(directory: Path, base_url: str) -> Path:
    """A TensorZero config with one model, `bench`, served by an OpenAI-compatible provider at
    the fake; no observability (no ClickHouse). Keys as documented at
    https://www.tensorzero.com/docs/integrations/model-providers/openai-compatible and
    https://www.tensorzero.com/docs/gateway/configuration-reference."""
    path = directory / "tensorzero.toml"
    path.write_text(
        "[gateway.observability]\n"
        "enabled = false\n\n"
        "[models.bench]\n"
        'routing = ["fake"]\n\n'
        "[models.bench.providers.fake]\n"
        'type = "openai"\n'
        'model_name = "bench"\n'
        f'api_base = "{base_url}/"\n'
        'api_key_location = "none"\n'
    )
    return path


class Consumers:
    """The three consumers, each built once and kept for the whole run (as an application
    would), each turning one request to a base URL into the count of text chunks it read."""

    def __init__(self, tz_gateway, tz_sync, openai_client, oy3o_configs) -> None:
        self.tz = tz_gateway
        self.tz_sync = tz_sync
        self.sdk = openai_client
        self.oy3o_configs = oy3o_configs

    async def oy3opy(self, base_url: str) -> int:
        from oy3opy.ai import exec

        n = 0
        async for _ in exec("bench", None, "openai:bench", self.oy3o_configs[base_url]):
            n += 1
        return n

    async def tensorzero(self, base_url: str) -> int:
        # One gateway per upstream (its config names the api_base), built in `build`.
        stream = await self.tz[base_url].inference(model_name="bench", input={"messages": MESSAGES},
                                                   stream=True)
        n = 0
        async for chunk in stream:
            for block in chunk.content:
                if getattr(block, "text", None):
                    n += 1
        return n

    async def oy3opy_sync(self, base_url: str) -> int:
        from oy3opy.ai import exec

        n = 0
        for _ in exec("bench", None, "openai:bench", self.oy3o_configs[base_url]):
            n += 1
        return n

    async def tensorzero_sync(self, base_url: str) -> int:
        stream = self.tz_sync[base_url].inference(model_name="bench", input={"messages": MESSAGES},
                                                  stream=True)
        n = 0
        for chunk in stream:
            for block in chunk.content:
                if getattr(block, "text", None):
                    n += 1
        return n

    async def openai_sdk(self, base_url: str) -> int:
        client = self.sdk[base_url]
        stream = await client.chat.completions.create(model="bench", messages=MESSAGES, stream=True)
        n = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
        return n


def process_cpu() -> float:
    """CPU seconds of this whole process so far, every thread (the gateways' Rust runtimes
    too); the fakes run in processes of their own, so none of theirs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(consume, base_url: str, expect: int) -> tuple[float, float]:
    """Wall and CPU seconds of one answer read to its end."""
    cpu = process_cpu()
    started = time.perf_counter()
    n = await consume(base_url)
    elapsed = time.perf_counter() - started
    if n != expect:
        sys.exit(f"{consume.__name__} read {n} chunks, expected {expect}")
    return elapsed, process_cpu() - cpu


async def run(long_url: str, short_url: str, tz_dir: Path) -> dict:
    from oy3opy.ai import Config
    from openai import AsyncOpenAI
    from tensorzero import AsyncTensorZeroGateway, TensorZeroGateway

    tz, tz_sync = {}, {}
    for name, url in (("long", long_url), ("short", short_url)):
        sub = tz_dir / name
        sub.mkdir()
        config_file = str(tensorzero_config(sub, url))
        tz[url] = await AsyncTensorZeroGateway.build_embedded(config_file=config_file)
        tz_sync[url] = TensorZeroGateway.build_embedded(config_file=config_file)
    sdk = {url: AsyncOpenAI(base_url=url, api_key="sk-bench") for url in (long_url, short_url)}
    oy3o = {url: Config(providers={"openai": {"base_url": url}}) for url in (long_url, short_url)}
    c = Consumers(tz, tz_sync, sdk, oy3o)
    # Each face of both: `async for` (the coroutine API) and plain `for` (blocking; nothing else
    # runs on this event loop meanwhile). The openai SDK's async client is the peer it had.
    consumers = [("oy3opy async", c.oy3opy), ("tensorzero async", c.tensorzero),
                 ("oy3opy sync", c.oy3opy_sync), ("tensorzero sync", c.tensorzero_sync),
                 ("openai SDK async", c.openai_sdk)]

    # Warm-up: connection pools, first-call set-up.
    for _, consume in consumers:
        for _ in range(3):
            await timed(consume, short_url, ANSWER_CHUNKS)

    results = {name: {"stream": [], "answer": []} for name, _ in consumers}
    for r in range(ROUNDS):
        # Alternate who goes first, round by round.
        order = consumers if r % 2 == 0 else consumers[::-1]
        for name, consume in order:
            results[name]["stream"].append(await timed(consume, long_url, STREAM_CHUNKS))
    for i in range(ANSWERS):
        order = consumers if i % 2 == 0 else consumers[::-1]
        for name, consume in order:
            results[name]["answer"].append(await timed(consume, short_url, ANSWER_CHUNKS))

    for client in sdk.values():
        await client.close()
    for gateway in tz.values():
        await gateway.close()
    for gateway in tz_sync.values():
        gateway.close()
    return results


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("oy3opy", "tensorzero", "openai"))


def main() -> None:
    # Each fake in a process of its own: in a thread here, its Python request handling would
    # take turns at the GIL with the consumer being measured.
    long_server, long_url = spawn(STREAM_CHUNKS)
    short_server, short_url = spawn(ANSWER_CHUNKS)
    try:
        with tempfile.TemporaryDirectory(prefix="oy3o-bench-tz-") as tz_dir:
            results = asyncio.run(run(long_url, short_url, Path(tz_dir)))
    finally:
        for proc in (long_server, short_server):
            proc.kill()
            proc.wait()

    rate = {n: STREAM_CHUNKS / statistics.median(w for w, _ in r["stream"]) for n, r in results.items()}
    answer = {n: statistics.median(w for w, _ in r["answer"]) for n, r in results.items()}
    cpu = {n: statistics.median(c for _, c in r["answer"]) for n, r in results.items()}
    stream_cpu = {n: statistics.median(c for _, c in r["stream"]) / STREAM_CHUNKS for n, r in results.items()}
    print(f"{versions()}; load average {os.getloadavg()[0]:.2f} at the end")
    print(f"one {STREAM_CHUNKS:,}-chunk stream (median of {ROUNDS}); one {ANSWER_CHUNKS}-chunk answer "
          f"(median of {ANSWERS}); consumers take turns")
    print("| consumer | chunks/s | CPU per chunk | per 64-chunk answer | CPU per answer |")
    print("|---|---:|---:|---:|---:|")
    for name in results:
        print(f"| {name} | {rate[name]:,.0f} | {stream_cpu[name] * 1e6:,.1f} µs | "
              f"{answer[name] * 1e6:,.0f} µs | {cpu[name] * 1e6:,.0f} µs |")
    pairs = [("oy3opy async", "tensorzero async"), ("oy3opy sync", "tensorzero sync"),
             ("oy3opy async", "openai SDK async")]
    for ours, peer in pairs:
        print(f"| **{ours} / {peer}** | **{rate[ours] / rate[peer]:.1f}×** | "
              f"{stream_cpu[peer] / stream_cpu[ours]:.1f}× | **{answer[peer] / answer[ours]:.1f}×** | "
              f"{cpu[peer] / cpu[ours]:.1f}× |")
    # The goal (≥ 5×) against TensorZero's faster face, whichever face of ours.
    faces = ("async", "sync")
    best = {n: (max(rate[f"{n} {f}"] for f in faces), min(stream_cpu[f"{n} {f}"] for f in faces),
                min(answer[f"{n} {f}"] for f in faces), min(cpu[f"{n} {f}"] for f in faces))
            for n in ("oy3opy", "tensorzero")}
    ours, peer = best["oy3opy"], best["tensorzero"]
    print(f"| **best face of each, oy3opy / tensorzero** (goal ≥ 5×) | **{ours[0] / peer[0]:.1f}×** | "
          f"{peer[1] / ours[1]:.1f}× | **{peer[2] / ours[2]:.1f}×** | {peer[3] / ours[3]:.1f}× |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
