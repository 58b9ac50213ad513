"""Local generation speed: our `local` provider (llama.cpp inside the oy3o engine, through the
`oy3opy` Python API) against `llama-cpp-python` (llama.cpp's own Python binding), on the same
SmolLM2 GGUF, same prompt, greedy, up to 256 new tokens, 2 threads, medians of 3, in one run.

Each round is a fresh process per side (the two embed their own copies of llama.cpp), the sides
alternating (ours, peer, ours, peer, ...) so that a busy moment of the machine hits both alike.
Both are measured the same way, from the answer stream:
- prompt tok/s = prompt tokens / time to the first answer token;
- generation tok/s = (answer tokens - 1) / time from the first answer token to the last;
- load: the process's first 1-token answer (model load included), and peak RSS.
Each round starts with a different system line, as it would across conversations.

Run: `python3 bench/local_tokens.py` (needs `pip install .` and `llama-cpp-python`; `scripts/setup`
installs the latter, and the `local` provider pulls the model when it is missing).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 3
MAX_TOKENS = 256
THREADS = 2
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = (
    "Write a long, detailed essay about the history of computers, from the first mechanical "
    "calculators to modern smartphones. Use several paragraphs."
)


def context(round_: int) -> str:
    return f"Session {round_ + 1}. You are a helpful assistant who writes long answers."


def model_path() -> Path:
    """The `local` provider's copy of the GGUF (it pulls and checks it when missing)."""
    from oy3opy.ai import Config, exec_once

    asyncio.run(exec_once("hi", None, "local:smollm2", Config({"options": {"max_tokens": 1}})))
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "oy3o" / "models" / MODEL_FILE
    if not path.is_file():
        sys.exit(f"no {MODEL_FILE} in {path.parent}")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(path: str, i: int) -> dict:
    from oy3opy.ai import Config, exec, exec_once

    model = f"local:{path}"
    started = time.perf_counter()
    asyncio.run(exec_once("hi", None, model, Config({"options": {"max_tokens": 1}})))
    load = time.perf_counter() - started
    usage = {}
    cfg = Config({
        "options": {"temperature": 0, "max_tokens": MAX_TOKENS},
        "listener": {"usage": [lambda e: usage.update(e["message"])]},
    })

    async def run() -> tuple[float, float, float, str]:
        text = []
        first = None
        t0 = time.perf_counter()
        async for chunk in exec(PROMPT, context(i), model, cfg):
            if first is None and chunk:
                first = time.perf_counter()
            text.append(chunk)
        return t0, first, time.perf_counter(), "".join(text)

    t0, first, end, text = asyncio.run(run())
    # The whole prompt, counted as for the peer.
    result = measure(t0, first, end, usage["input_tokens"], usage["output_tokens"], text)
    return {"load_s": load, "rss_mb": peak_rss_mb(), "round": result}


def peer(path: str, i: int) -> dict:
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=path, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=2048,
                verbose=False)
    llm.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=1)
    load = time.perf_counter() - started
    messages = [{"role": "system", "content": context(i)}, {"role": "user", "content": PROMPT}]
    t0 = time.perf_counter()
    first = None
    text = []
    tokens = 0
    for chunk in llm.create_chat_completion(messages, temperature=0.0, max_tokens=MAX_TOKENS,
                                            stream=True):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            tokens += 1
            if first is None:
                first = time.perf_counter()
            text.append(piece)
    end = time.perf_counter()
    # The prompt as the chat template renders it, counted by the model's tokenizer.
    prompt_tokens = len(llm.tokenize(render_chatml(messages).encode(), add_bos=False, special=True))
    result = measure(t0, first, end, prompt_tokens, tokens, "".join(text))
    return {"load_s": load, "rss_mb": peak_rss_mb(), "round": result}


def render_chatml(messages: list[dict]) -> str:
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def measure(t0: float, first: float, end: float, prompt_tokens: int, tokens: int, text: str) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "tokens": tokens,
        "prompt_tps": prompt_tokens / (first - t0),
        "gen_tps": (tokens - 1) / (end - first),
        "text": text[:60],
    }


def side(name: str, path: Path, i: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--side", name, str(path), str(i)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--side":
        run = ours if sys.argv[2] == "ours" else peer
        print(json.dumps(run(sys.argv[3], int(sys.argv[4]))))
        return
    path = model_path()
    results = {"oy3o local": [], "llama-cpp-python": []}
    for i in range(ROUNDS):
        results["oy3o local"].append(side("ours", path, i))
        results["llama-cpp-python"].append(side("peer", path, i))
    results = {
        name: {
            "load_s": statistics.median(r["load_s"] for r in runs),
            "rss_mb": max(r["rss_mb"] for r in runs),
            "rounds": [r["round"] for r in runs],
        }
        for name, runs in results.items()
    }
    import llama_cpp

    print(f"{MODEL_FILE}, greedy, max {MAX_TOKENS} tokens, {THREADS} threads, medians of {ROUNDS}; "
          f"llama-cpp-python {llama_cpp.__version__}; load average {os.getloadavg()[0]:.1f}")
    print("| side | prompt tok/s | generation tok/s | tokens (prompt / answer) | load + 1 token | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    med = {}
    for name, r in results.items():
        p = statistics.median(x["prompt_tps"] for x in r["rounds"])
        g = statistics.median(x["gen_tps"] for x in r["rounds"])
        med[name] = (p, g)
        toks = "/".join(str(x["prompt_tokens"]) for x in r["rounds"][:1])
        ans = ",".join(str(x["tokens"]) for x in r["rounds"])
        print(f"| {name} | {p:.0f} | {g:.1f} | {toks} / {ans} | {r['load_s']:.2f} s | {r['rss_mb']:.0f} MB |")
    (op, og), (pp, pg) = med["oy3o local"], med["llama-cpp-python"]
    print(f"ratio oy3o / llama-cpp-python: generation {og / pg:.2f}×, prompt {op / pp:.2f}×")
    for name, r in results.items():
        rounds = "; ".join(f"{x['prompt_tps']:.0f} / {x['gen_tps']:.1f}" for x in r["rounds"])
        print(f"{name}: each round's prompt / generation tok/s: {rounds}; "
              f"answer starts {r['rounds'][0]['text']!r}")


if __name__ == "__main__":
    main()
