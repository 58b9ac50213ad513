"""Terminal start-up and time to a one-shot answer: `oy3o` against the `llm` command (Python),
both pointed at the same zero-delay fake OpenAI server on loopback, in one run.

Measures, as medians of several runs each (wall time of the whole process):
- `--version`: start-up alone;
- `oy3o 'Say hi' --model openai:bench` vs `llm -m bench 'Say hi'`: start, request, streamed answer,
  exit. `llm` runs as installed (it logs each answer to its SQLite database, as users get it), and
  so does `oy3o` (its default store, SQLite in the data dir);
- the same `oy3o` answer with `OY3O_STORE=none`: what keeping the conversation costs.

Run: `python3 bench/cli_startup.py [path/to/oy3o]` (default: the release build in the cargo target
dir). Needs `pip install llm` (`scripts/bench` does it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_openai import serve, sse_body

ROOT = Path(__file__).resolve().parents[1]
OY3O_RUNS = 30
LLM_RUNS = 10
ANSWER = ["Hi", " there", "!"]


BODY = sse_body(ANSWER, usage=(9, 3))


def oy3o_binary() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "release" / "oy3o"


def timed(cmd: list[str], env: dict, runs: int, expect: str | None) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if out.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({out.returncode}): {out.stderr.strip()}")
        if expect is not None and out.stdout.strip() != expect:
            sys.exit(f"{cmd[0]} answered {out.stdout!r}, expected {expect!r}")
    return times


def main() -> None:
    oy3o = oy3o_binary()
    llm = shutil.which("llm")
    if not oy3o.is_file():
        sys.exit(f"no oy3o binary at {oy3o}: run cargo build --release first, or pass its path")
    if llm is None:
        sys.exit("the llm command is not installed: python3 -m pip install llm")
    server, base = serve(BODY)

    home = Path(tempfile.mkdtemp(prefix="oy3o-bench-cli-"))
    # llm's way to an OpenAI-compatible server: a model in extra-openai-models.yaml.
    llm_dir = home / "llm"
    llm_dir.mkdir()
    (llm_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: bench\n  model_name: bench\n  api_base: \"{base}\"\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "LLM_USER_PATH": str(llm_dir),
        "OPENAI_BASE_URL": base,
        "OPENAI_API_KEY": "sk-bench",
    }
    expect = "".join(ANSWER)
    # One warm-up each: the first run pays for cold file caches.
    timed([str(oy3o), "Say hi", "--model", "openai:bench"], env, 1, expect)
    timed([llm, "-m", "bench", "Say hi"], env, 1, expect)

    rows = [
        ("--version", timed([str(oy3o), "--version"], env, OY3O_RUNS, None),
         timed([llm, "--version"], env, LLM_RUNS, None)),
        ("one-shot answer", timed([str(oy3o), "Say hi", "--model", "openai:bench"], env, OY3O_RUNS, expect),
         timed([llm, "-m", "bench", "Say hi"], env, LLM_RUNS, expect)),
    ]
    no_store = timed([str(oy3o), "Say hi", "--model", "openai:bench"],
                     {**env, "OY3O_STORE": "none"}, OY3O_RUNS, expect)
    server.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    llm_version = subprocess.run([llm, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"oy3o ({oy3o}) vs {llm_version}; medians of {OY3O_RUNS} / {LLM_RUNS} runs; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| run | oy3o | llm | ratio (llm / oy3o) |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"| {name} | {a * 1000:.1f} ms | {b * 1000:.0f} ms | {b / a:.0f}× |")
    stored, bare = statistics.median(rows[1][1]), statistics.median(no_store)
    print(f"oy3o one-shot answer with OY3O_STORE=none: {bare * 1000:.1f} ms "
          f"(the default SQLite store adds {(stored - bare) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
