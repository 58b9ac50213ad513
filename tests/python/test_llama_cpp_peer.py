"""An outside peer: llama.cpp's OpenAI-compatible server from the Python package
`llama-cpp-python[server]` (scripts/setup installs it), serving the same SmolLM2 GGUF that the
`local` provider uses, and our `openai:` provider talking to it through the Python API."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

#: The default local model's file, as the `local` provider's catalog names it
#: (crates/oy3o-llama/src/catalog.rs).
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def platform_cache_dir() -> Path:
    """Where the `local` provider keeps its models (Rust's `dirs::cache_dir()`/oy3o/models)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "oy3o" / "models"


def smollm2_path() -> Path:
    """The GGUF, pulled (and checked) by the `local` provider itself if it is not there yet."""
    from oy3opy.ai import Config, exec_once

    asyncio.run(exec_once("hi", None, "local:smollm2", Config({"options": {"max_tokens": 1}})))
    path = platform_cache_dir() / MODEL_FILE
    assert path.is_file(), f"the local provider did not leave {MODEL_FILE} in {path.parent}"
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    """`python3 -m llama_cpp.server` on the GGUF, 2 threads (its default of 1 is slow), on a free
    loopback port; yields its OpenAI base URL."""
    model = smollm2_path()
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-cpp-server-{port}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_threads", "2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "False"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("llama_cpp.server did not answer /v1/models within 120 s")
        time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_our_openai_provider_streams_an_answer_from_llama_cpp_server(llama_server):
    from oy3opy.ai import Config, exec

    # Greedy: SmolLM2-135M drifts at the server's default sampling (DEPS.md).
    cfg = Config({
        "providers": {"openai": {"base_url": llama_server, "max_retries": 0}},
        "options": {"temperature": 0, "max_tokens": 32},
    })

    async def ask():
        return [chunk async for chunk in exec("What is 1+1?", None, "openai:smollm2", cfg)]

    chunks = asyncio.run(ask())
    answer = "".join(chunks)
    assert "2" in answer, answer
    assert len(chunks) > 1, f"the answer came in one piece, not streamed: {chunks}"
