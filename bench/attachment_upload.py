"""Sending a 5 MB image through `oy3o serve` against sending it straight to the upstream, in one
run: the same Chat Completions request (a text part and a 5 MiB PNG as a base64 `image_url`
data URL, about 7 MB of JSON) posted with `curl` to the zero-delay fake OpenAI server directly,
and to `oy3o serve` in front of it (which reads the request, decodes and checks the image with
the engine's loader, and sends it on in OpenAI's shape). Both sides stream the same answer.

Reports the median wall time of each over several rounds (alternating) and the ratio: what the
server adds to an upload this size.

Run: `python3 bench/attachment_upload.py [path/to/oy3o]` (default: the release build in the cargo
target dir). Needs `curl`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_openai import serve, sse_body

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15
SIZE = 5 * 1024 * 1024


def oy3o_binary() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "release" / "oy3o"


def image() -> bytes:
    """A PNG signature and header, then random bytes up to 5 MiB (the engine checks the
    signature; the fake does not decode images)."""
    head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\x00\x00\x00\x04\x00\x08\x02\x00\x00\x00"
    return head + os.urandom(SIZE - len(head))


def curl(url: str, body: Path) -> float:
    started = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-X", "POST", url, "-H", "content-type: application/json",
         "--data-binary", f"@{body}"],
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    if out.returncode != 0 or b"[DONE]" not in out.stdout:
        sys.exit(f"curl {url} failed ({out.returncode}): {out.stdout[:300]!r} {out.stderr[:300]!r}")
    return elapsed


def main() -> None:
    oy3o = oy3o_binary()
    if not oy3o.is_file():
        sys.exit(f"no oy3o binary at {oy3o}: cargo build --release -p oy3o-cli")
    fake, base = serve(sse_body(["A", " picture", "."]))
    data = base64.b64encode(image()).decode()
    request = {
        "model": "openai:gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        ]}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "request.json"
        body.write_text(json.dumps(request))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/config",
               "OPENAI_BASE_URL": base, "OPENAI_API_KEY": "sk-bench", "OY3O_STORE": "none"}
        server = subprocess.Popen([str(oy3o), "serve", "--port", "0"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = server.stdout.readline()
            found = re.search(r"listening on (http://[0-9.:]+)", line)
            if not found:
                sys.exit(f"oy3o serve did not start: {line}")
            through = f"{found.group(1)}/v1/chat/completions"
            direct = f"{base}/chat/completions"
            curl(through, body)  # warm-up: connections, first allocation
            curl(direct, body)
            ours, peer = [], []
            for _ in range(ROUNDS):
                ours.append(curl(through, body))
                peer.append(curl(direct, body))
        finally:
            server.terminate()
            server.wait()
            fake.shutdown()
    o, p = statistics.median(ours), statistics.median(peer)
    print(f"request body: {body_size(request) / 1e6:.1f} MB (a {SIZE / 2**20:.0f} MiB PNG as base64)")
    print(f"{ROUNDS} rounds each, medians, load average {os.getloadavg()[0]:.1f}")
    print(f"| curl → fake upstream | {p * 1000:.1f} ms |")
    print(f"| curl → oy3o serve → fake upstream | {o * 1000:.1f} ms |")
    print(f"| ratio (through oy3o / direct) | {o / p:.2f} |")
    print(f"| added by oy3o serve | {(o - p) * 1000:.1f} ms |")


def body_size(request: dict) -> int:
    return len(json.dumps(request))


if __name__ == "__main__":
    main()
