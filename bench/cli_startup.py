"""Terminal start-up and time to a one-shot answer: `oy3o` against aichat (Rust, built from the
crate registry) and, when installed, the `llm` command (Python), all pointed at the same
zero-delay fake OpenAI server on loopback, in one run.

Measures the wall time of the whole process, medians of RUNS runs each:
- `--version`: start-up alone;
- one answer: `oy3o 'Say hi' --model openai:bench` with its default store (SQLite in the data
  dir: the turn is on disk when the process exits), the same with `--store none`, aichat with
  session saving and message saving off (`aichat -m bench:bench 'Say hi'`), and `llm -m bench
  'Say hi'` as installed (it logs each answer to its SQLite database).

Timing: `hyperfine` (no shell between it and the command, warm-up runs first) when found on
PATH or in the peers' cache (`~/.cache/oy3o/peers/*/bin`), else a loop here with
`time.perf_counter()` around `subprocess.run` (the same for every command, so the ratios hold;
the absolute numbers then include Python's fork and exec, ~1 ms).

Run: `python3 bench/cli_startup.py [path/to/oy3o]` (default: the release build in the cargo target
dir). Needs aichat 0.30.0: `scripts/bench` builds it with `cargo install aichat --version 0.30.0
--locked --root ~/.cache/oy3o/peers/aichat-0.30.0` (or set `AICHAT` to its path).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_openai import serve, sse_body

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("OY3O_PEERS_DIR") or Path.home() / ".cache" / "oy3o" / "peers")
AICHAT_VERSION = "0.30.0"
RUNS = int(os.environ.get("OY3O_BENCH_RUNS", "40"))
LLM_RUNS = 10
ANSWER = ["Hi", " there", "!"]


BODY = sse_body(ANSWER, usage=(9, 3))


def oy3o_binary() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "release" / "oy3o"


def find_tool(name: str, env_var: str) -> str | None:
    """`env_var` if set, else the peers' cache (`PEERS/*/bin/name`), else PATH."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    cached = sorted(PEERS.glob(f"*/bin/{name}"))
    if cached:
        return str(cached[-1])
    return shutil.which(name)


def check(cmd: list[str], env: dict, expect: str | None) -> None:
    """One run whose output is checked (also the warm-up: cold file caches)."""
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    if expect is not None and out.stdout.strip() != expect:
        sys.exit(f"{cmd[0]} answered {out.stdout!r}, expected {expect!r}")


def timed_loop(cmd: list[str], env: dict, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
        if out.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({out.returncode})")
    return statistics.median(times)


def timed_hyperfine(hyperfine: str, cmd: list[str], env: dict, runs: int, scratch: Path) -> float:
    """The median of `runs` runs by hyperfine (`--shell=none`: no shell start-up in the
    figure; https://github.com/sharkdp/hyperfine#usage, `hyperfine --help`)."""
    report = scratch / "hyperfine.json"
    line = " ".join(shlex.quote(part) for part in cmd)
    subprocess.run([hyperfine, "--shell=none", "--warmup", "3", "--runs", str(runs), "--style", "none",
                    "--export-json", str(report), line], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads(report.read_text())["results"][0]["median"]


def main() -> None:
    oy3o = oy3o_binary()
    if not oy3o.is_file():
        sys.exit(f"no oy3o binary at {oy3o}: run cargo build --release first, or pass its path")
    aichat = find_tool("aichat", "AICHAT")
    if aichat is None:
        sys.exit(f"aichat is not built: cargo install aichat --version {AICHAT_VERSION} --locked "
                 f"--root {PEERS}/aichat-{AICHAT_VERSION} (scripts/bench does it)")
    llm = shutil.which("llm")
    hyperfine = find_tool("hyperfine", "HYPERFINE")
    server, base = serve(BODY)

    home = Path(tempfile.mkdtemp(prefix="oy3o-bench-cli-"))
    # llm's way to an OpenAI-compatible server: a model in extra-openai-models.yaml.
    llm_dir = home / "llm"
    llm_dir.mkdir()
    (llm_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: bench\n  model_name: bench\n  api_base: \"{base}\"\n"
    )
    # aichat's: an openai-compatible client in config.yaml, in the dir AICHAT_CONFIG_DIR names;
    # nothing kept (save: messages.md, save_session: sessions), no colours, no tools (there are
    # none). Keys from aichat 0.30.0's config.example.yaml and src/config/mod.rs
    # (https://github.com/sigoden/aichat/blob/v0.30.0/config.example.yaml).
    aichat_dir = home / "aichat"
    aichat_dir.mkdir()
    (aichat_dir / "config.yaml").write_text(
        "model: bench:bench\n"
        "stream: true\n"
        "save: false\n"
        "save_session: false\n"
        "highlight: false\n"
        "function_calling: false\n"
        "clients:\n"
        "- type: openai-compatible\n"
        "  name: bench\n"
        f"  api_base: {base}\n"
        "  api_key: sk-bench\n"
        "  models:\n"
        "  - name: bench\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "LLM_USER_PATH": str(llm_dir),
        "AICHAT_CONFIG_DIR": str(aichat_dir),
        "OPENAI_BASE_URL": base,
        "OPENAI_API_KEY": "sk-bench",
    }
    expect = "".join(ANSWER)
    ask = [str(oy3o), "Say hi", "--model", "openai:bench"]
    commands = {
        "oy3o --version": [str(oy3o), "--version"],
        "aichat --version": [aichat, "--version"],
        "oy3o answer, SQLite store": ask,
        "oy3o answer, --store none": ask + ["--store", "none"],
        "aichat answer, unstored": [aichat, "-m", "bench:bench", "Say hi"],
    }
    for name, cmd in commands.items():
        check(cmd, env, None if "version" in name else expect)
    if llm is not None:
        commands["llm --version"] = [llm, "--version"]
        commands["llm answer"] = [llm, "-m", "bench", "Say hi"]
        check(commands["llm answer"], env, expect)

    scratch = home / "scratch"
    scratch.mkdir()
    medians = {}
    # Two passes over the commands, half the runs each, so load that comes and goes during the
    # run falls on all of them; the median of each pass's median.
    for _ in range(2):
        for name, cmd in commands.items():
            runs = max(RUNS // 2, 2) if not name.startswith("llm") else LLM_RUNS // 2
            m = (timed_hyperfine(hyperfine, cmd, env, runs, scratch) if hyperfine
                 else timed_loop(cmd, env, runs))
            medians.setdefault(name, []).append(m)
    server.shutdown()
    ms = {name: statistics.mean(v) * 1000 for name, v in medians.items()}
    shutil.rmtree(home, ignore_errors=True)

    aichat_version = subprocess.run([aichat, "--version"], capture_output=True, text=True).stdout.strip()
    oy3o_version = subprocess.run([str(oy3o), "--version"], capture_output=True, text=True).stdout.strip()
    timer = f"hyperfine ({hyperfine})" if hyperfine else "subprocess.run loop"
    print(f"{oy3o_version} ({oy3o}) vs {aichat_version}; {timer}; {RUNS} runs each in two halves, "
          f"medians; load average {os.getloadavg()[0]:.2f}")
    print("| run | ms |")
    print("|---|---:|")
    for name, value in ms.items():
        print(f"| {name} | {value:.2f} |")
    print(f"| **`--version`, aichat / oy3o** | **{ms['aichat --version'] / ms['oy3o --version']:.2f}×** |")
    stored, bare = ms["oy3o answer, SQLite store"], ms["oy3o answer, --store none"]
    peer = ms["aichat answer, unstored"]
    print(f"| **answer, aichat (unstored) / oy3o (SQLite)** | **{peer / stored:.2f}×** (goal ≥ 1) |")
    print(f"| **answer, aichat (unstored) / oy3o (--store none)** | **{peer / bare:.2f}×** |")
    print(f"| keeping the turn (SQLite − none) | {stored - bare:.2f} ms |")
    if llm is not None:
        print(f"| answer, llm / oy3o (SQLite) | {ms['llm answer'] / stored:.0f}× |")


if __name__ == "__main__":
    main()
