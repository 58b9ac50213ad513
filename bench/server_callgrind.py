"""Instructions per request of `oy3o serve` (valgrind's callgrind), for before/after comparisons
that the machine's load does not blur.

    python3 bench/server_callgrind.py [BINARY] [whole|stream|ws] [none|sqlite]

Runs the server under callgrind twice, answering 300 then 600 sequential
`/v1/chat/completions` requests over one keep-alive connection (from a keep-alive fake
upstream in this process that replays the recorded llama.cpp stream, or its whole JSON answer
for `"stream": false`), and prints the difference divided by 300: start-up and shutdown cancel
out. `ws` sends the same one-shot prompt as WebSocket frames (`{"ref", "model", "prompt"}`, as
the load bench does) over one connection and reads each answer to its `signal`. BINARY defaults to target/release/oy3o (honours CARGO_TARGET_DIR). The third argument is
the conversation store: `none` (default) or `sqlite` (a fresh file; every answer is then a
stored turn, the SQLite writer thread's instructions included). With OY3O_CALLGRIND_OUT=PREFIX
the two profiles are kept as PREFIX-300.out and PREFIX-600.out, for `callgrind_annotate
--inclusive=yes` or for diffing two builds function by function.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STREAM = (ROOT / "tests/fixtures/llama-cpp-python-0.3-chat-stream.sse").read_bytes()
WHOLE = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1795712512, "model": "smollm2",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "1 + 1 = 2 in mathematics."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 37, "completion_tokens": 9, "total_tokens": 46},
}).encode()


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        streamed = body.get("stream") is True
        data = STREAM if streamed else WHOLE
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if streamed else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instructions(binary, mode, n, upstream_port, store):
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "oy3o.toml"
        store = f"sqlite:{tmp}/store.db" if store == "sqlite" else "none"
        config.write_text(
            f'model = "openai:bench"\nstore = "{store}"\n\n[providers.openai]\n'
            f'base_url = "http://127.0.0.1:{upstream_port}/v1"\napi_key = "sk-bench"\nmax_retries = 0\n'
        )
        port = free_port()
        log = Path(tmp) / "valgrind.log"
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", f"--log-file={log}",
             binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config)],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port)
                    conn.connect()
                    break
                except OSError:
                    time.sleep(0.1)
            if mode == "ws":
                conn.close()
                websocket_prompts(port, n)
            else:
                http_requests(conn, mode, n)
        finally:
            server.send_signal(2)
            server.wait(timeout=120)
        keep = os.environ.get("OY3O_CALLGRIND_OUT")
        if keep:
            Path(f"{keep}-{n}.out").write_bytes((Path(tmp) / "cg.out").read_bytes())
        collected = re.search(r"Collected : (\d+)", log.read_text())
        return int(collected.group(1))


def http_requests(conn, mode, n):
    """`n` sequential completions over one keep-alive connection."""
    body = json.dumps({"model": "openai:bench", "stream": mode == "stream",
                       "messages": [{"role": "user", "content": "What is 1+1?"}]})
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 200, answer


def websocket_prompts(port, n):
    """`n` one-shot prompts over one WebSocket, each read to its end (`signal`)."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        for i in range(n):
            ws.send(json.dumps({"ref": str(i), "model": "openai:bench", "prompt": "What is 1+1?"}))
            while True:
                frame = json.loads(ws.recv())
                assert frame["type"] != "error", frame
                if frame["type"] == "signal":
                    break


def main():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = sys.argv[1] if len(sys.argv) > 1 else str(target / "release/oy3o")
    mode = sys.argv[2] if len(sys.argv) > 2 else "whole"
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = upstream.server_address[1]
    store = sys.argv[3] if len(sys.argv) > 3 else "none"
    few = instructions(binary, mode, 300, port, store)
    many = instructions(binary, mode, 600, port, store)
    print(f"{mode}, store {store}: {(many - few) / 300:,.0f} instructions per request ({binary})")


if __name__ == "__main__":
    main()
