"""The zero-delay fake OpenAI server the Python benchmarks share: one fixed Chat Completions SSE
body, written at once to every POST."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable, Optional, Tuple

HEAD = '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,"model":"bench","choices":[{"index":0,"delta":'


def sse_body(pieces: Iterable[str], usage: Optional[Tuple[int, int]] = None) -> bytes:
    """A streamed answer: the role chunk, one chunk per piece, the finish chunk, an optional
    usage chunk `(prompt_tokens, completion_tokens)`, then `[DONE]`."""
    parts = [f'data: {HEAD}{{"role":"assistant","content":""}},"finish_reason":null}}]}}\n\n']
    for piece in pieces:
        parts.append(f'data: {HEAD}{json.dumps({"content": piece})},"finish_reason":null}}]}}\n\n')
    parts.append(f'data: {HEAD}{{}},"finish_reason":"stop"}}]}}\n\n')
    if usage is not None:
        prompt, completion = usage
        totals = json.dumps({"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}, separators=(",", ":"))
        parts.append('data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
                     f'"model":"bench","choices":[],"usage":{totals}}}\n\n')
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def serve(body: bytes) -> Tuple[ThreadingHTTPServer, str]:
    """Starts the fake on a free loopback port; returns the server (call `shutdown()`) and its
    OpenAI base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The head and the body leave in two writes: without TCP_NODELAY the body waits for the
        # client's (delayed) ACK of the head, up to 40 ms on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *args):  # noqa: D102
            pass

        def do_POST(self):  # noqa: N802, D102
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def spawn(chunks: int) -> Tuple[subprocess.Popen, str]:
    """Starts the fake in a process of its own (this file run as a script), answering with
    `chunks` pieces `t0 `, `t1 `…: its request handling then takes no turns at the measured
    process's GIL. Returns the process (close its stdin, or kill it, to stop it) and its
    OpenAI base URL."""
    proc = subprocess.Popen([sys.executable, __file__, str(chunks)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _main() -> None:
    """`python3 fake_openai.py CHUNKS`: serves an answer of CHUNKS pieces, prints the base URL,
    stops when stdin closes."""
    server, base_url = serve(sse_body(f"t{i} " for i in range(int(sys.argv[1]))))
    print(base_url, flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    _main()
