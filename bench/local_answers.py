"""Short factual questions, side by side: our `local` provider (through `oy3o serve`'s
OpenAI-compatible API) against the same GGUF served by llama.cpp's own server
(`llama-cpp-python[server]`, `--n_threads 2`, everything else its defaults), in one run.

Each question is one line; an answer is correct when it contains one of the expected answers as
a whole word or number ("lion" in "million" or "0°" in "18.0°C" does not count;
case-insensitive). Both sides get the same request: the question as the only message, no
sampling options, so each side answers with its own defaults (the peer: temperature 0.8, top-k
40, top-p 0.95, min-p 0.05, repeat penalty 1.1 over the last 64 tokens, no cap). The peer
samples, so one pass over the questions is noisy: every question is asked `ROUNDS` times of
each side (`OY3O_BENCH_ROUNDS`, default 3), alternating between the sides, ours first.
Measured per side: correct answers per round (mean, and the lowest and highest round), the
longest answer (characters), the slowest answer (seconds, whole request), and tokens/s = all
answer tokens / all answer time.

Run: `python3 bench/local_answers.py [OY3O_BINARY]` (default `target/release/oy3o`; needs
`llama-cpp-python[server]`, which `scripts/setup` installs; the model is pulled with
`oy3o pull smollm2`). Prints a markdown table, then each question's answers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

THREADS = 2
ROUNDS = int(os.environ.get("OY3O_BENCH_ROUNDS", "3"))
TIMEOUT_S = 300

#: (question, accepted substrings).
QUESTIONS: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["paris"]),
    ("What is the capital of Japan?", ["tokyo"]),
    ("What is the capital of Italy?", ["rome"]),
    ("What is the capital of Germany?", ["berlin"]),
    ("What is the capital of Spain?", ["madrid"]),
    ("What is 1+1?", ["2", "two"]),
    ("What is 2+3?", ["5", "five"]),
    ("What is 10 times 10?", ["100", "hundred"]),
    ("How many days are in a week?", ["7", "seven"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("What is the largest planet in our solar system?", ["jupiter"]),
    ("What planet is known as the Red Planet?", ["mars"]),
    ("Which star is at the center of our solar system?", ["sun"]),
    ("What is the chemical symbol for water?", ["h2o", "h₂o"]),
    ("What gas do plants absorb from the air?", ["carbon dioxide", "co2", "co₂"]),
    ("What is the freezing point of water in degrees Celsius?", ["0°", "0 °", "0 degrees", "zero"]),
    ("Who wrote Romeo and Juliet?", ["shakespeare"]),
    ("Who painted the Mona Lisa?", ["leonardo", "da vinci"]),
    ("What is the largest ocean on Earth?", ["pacific"]),
    ("What language is mainly spoken in Brazil?", ["portuguese"]),
    ("How many continents are there?", ["7", "seven"]),
    ("What animal is known as the king of the jungle?", ["lion"]),
    ("What is the opposite of hot?", ["cold"]),
]


def model_path(binary: str) -> Path:
    """The default model's file, pulled (and checked) by `oy3o pull`, which prints its path."""
    out = subprocess.run([binary, "pull", "smollm2"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"oy3o pull smollm2 failed:\n{out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{name} did not answer within 120 s")


def ask(base: str, model: str, question: str) -> dict:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": question}]})
    request = urllib.request.Request(f"{base}/chat/completions", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as r:
        reply = json.load(r)
    seconds = time.perf_counter() - started
    choice = reply["choices"][0]
    return {
        "text": choice["message"].get("content") or "",
        "finish": choice.get("finish_reason"),
        "tokens": (reply.get("usage") or {}).get("completion_tokens", 0),
        "seconds": seconds,
    }


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/oy3o"
    path = model_path(binary)
    ours_port, peer_port = free_port(), free_port()
    ours = subprocess.Popen([binary, "serve", "--store", "none", "--port", str(ours_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--n_threads",
         str(THREADS), "--host", "127.0.0.1", "--port", str(peer_port), "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sides = {
        # The catalog name (the same file as `path`): a server takes `local:<path>` from
        # clients only inside its `model_dirs` (issue 18).
        "oy3o local": (f"http://127.0.0.1:{ours_port}/v1", "local:smollm2", ours),
        "llama-cpp-python server": (f"http://127.0.0.1:{peer_port}/v1", "smollm2", peer),
    }
    try:
        for name, (base, _, proc) in sides.items():
            wait_ready(base, proc, name)
        for name, (base, model, _) in sides.items():
            ask(base, model, "hi")  # load the model outside the measurement
        # answers[side][round][question]
        answers: dict[str, list[list[dict]]] = {name: [] for name in sides}
        for _ in range(ROUNDS):
            for got in answers.values():
                got.append([])
            for question, _ in QUESTIONS:
                for name, (base, model, _) in sides.items():
                    answers[name][-1].append(ask(base, model, question))
    finally:
        for _, _, proc in sides.values():
            proc.terminate()
            proc.wait(timeout=10)

    import llama_cpp

    print(f"{len(QUESTIONS)} one-line questions × {ROUNDS} rounds, {path.name}, {THREADS} "
          f"threads, each side's default sampling; llama-cpp-python {llama_cpp.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print()
    print("| side | correct (mean, lowest–highest round) | longest answer | slowest answer "
          "| tokens/s | finish reasons |")
    print("|---|---:|---:|---:|---:|---|")
    for name, rounds in answers.items():
        per_round = [sum(right(a["text"], expected) for a, (_, expected) in zip(got, QUESTIONS))
                     for got in rounds]
        every = [a for got in rounds for a in got]
        longest = max(len(a["text"]) for a in every)
        slowest = max(a["seconds"] for a in every)
        tps = sum(a["tokens"] for a in every) / sum(a["seconds"] for a in every)
        finishes: dict[str, int] = {}
        for a in every:
            finishes[a["finish"]] = finishes.get(a["finish"], 0) + 1
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(finishes.items(), key=str))
        mean = sum(per_round) / len(per_round)
        print(f"| {name} | {mean:.1f}/{len(QUESTIONS)} ({min(per_round)}–{max(per_round)}) "
              f"| {longest:,} chars | {slowest:.1f} s | {tps:.0f} | {reasons} |")
    print()
    for i, (question, expected) in enumerate(QUESTIONS):
        print(f"- {question}")
        for name, rounds in answers.items():
            for a in (got[i] for got in rounds):
                mark = "ok" if right(a["text"], expected) else "WRONG"
                text = re.sub(r"\s+", " ", a["text"]).strip()
                print(f"  - {name} ({mark}, {len(a['text'])} chars, {a['seconds']:.1f} s, "
                      f"{a['finish']}): {text[:160]!r}")


def right(text: str, expected: list[str]) -> bool:
    """True when `text` holds one of `expected` as a whole word or number: not inside a longer
    word ("lion" in "million") or number ("0°" in "18.0°C", "2" in "12" or "2.5")."""
    low = text.lower()
    for e in expected:
        before = r"(?<![\w.])" if e[0].isalnum() else ""
        after = r"(?!\w|\.\d)" if e[-1].isalnum() else ""
        if re.search(before + re.escape(e) + after, low):
            return True
    return False


if __name__ == "__main__":
    main()
