"""The web chat page (`GET /`), driven by real headless Chromium over the DevTools protocol:
it loads the models, sends a prompt, streams the answer into the flow, keeps a second chat in
its own tab, and the test saves a screenshot (target/test-artifacts/web-page.png)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import RECORDED_ANSWER, ROOT
from test_websocket_listen import Served

websockets_sync = pytest.importorskip("websockets.sync.client")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = ROOT / "target/test-artifacts/web-page.png"


class Browser:
    """Headless Chromium with one page, driven through the Chrome DevTools Protocol
    (https://chromedevtools.github.io/devtools-protocol/: Runtime.evaluate, Page.navigate,
    Page.captureScreenshot)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="oy3o-chromium-")
        self.process = subprocess.Popen(
            [
                CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1100,800",
                f"--user-data-dir={self.profile}", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("headless Chromium did not start (is the chromium package installed?)")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websockets_sync.connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20)
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict:
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=30))
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; page text: {self.eval('document.body.innerText')!r}")

    def close(self) -> None:
        try:
            self.socket.close()
        except Exception:  # noqa: BLE001
            pass
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def normalize(text: str) -> str:
    return " ".join(text.split())


def answers(browser: Browser) -> list:
    return browser.eval("[...document.querySelectorAll('.msg.assistant')].map(t => ({"
                        "text: t.querySelector('.text').innerText,"
                        "error: t.querySelector('.error')?.innerText ?? ''}))")


def send(browser: Browser, prompt: str) -> None:
    browser.eval(f"document.getElementById('prompt').value = {json.dumps(prompt)};"
                 "document.getElementById('form').requestSubmit();")


#: One answer in the open tab, finished: the Send button is enabled again.
ANSWERED = ("document.querySelectorAll('.msg.assistant').length === 1 && "
            "!document.getElementById('send').disabled && "
            "document.querySelector('.msg.assistant .text').innerText.length > 0")


@pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium package (scripts/setup installs it)")
def test_the_web_page_streams_an_answer_in_chromium(fake):
    served = Served(fake.base_url)
    address = served.address
    browser = Browser()
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"http://{address}/")
        browser.wait_for("document.getElementById('status')?.className === 'open'", "the WebSocket to connect")
        models = browser.eval("[...document.getElementById('model').options].map(o => o.value)")
        assert "openai:gpt-4o-mini" in models, f"the model list comes from /v1/models: {models}"
        browser.eval("document.getElementById('model').value = 'openai:gpt-4o-mini'")

        # Count redraws of the flow: a streamed answer is drawn chunk by chunk, not once.
        browser.eval("window.redraws = 0; new MutationObserver(() => window.redraws++)"
                     ".observe(document.getElementById('flow'), {childList: true, subtree: true});")
        send(browser, "Say hello")
        browser.wait_for(ANSWERED, "the answer to end")
        first = answers(browser)
        assert first[0]["error"] == "", first
        assert normalize(first[0]["text"]) == normalize(RECORDED_ANSWER)
        chunks = RECORDED_ANSWER.count(" ")  # the recording sends a word per chunk
        assert browser.eval("window.redraws") > chunks, "the answer was drawn as it streamed"

        # A second chat in its own tab; the first keeps its flow.
        browser.eval("document.getElementById('new').click()")
        assert browser.eval("document.querySelectorAll('.msg').length") == 0, "a new tab starts empty"
        send(browser, "And again")
        browser.wait_for(ANSWERED, "the second tab's answer")
        assert normalize(answers(browser)[0]["text"]) == normalize(RECORDED_ANSWER)
        tabs = browser.eval("[...document.querySelectorAll('#tabs .tab')].map(t => t.innerText)")
        assert [t.rstrip("×").strip() for t in tabs] == ["Say hello", "And again"], tabs
        # Two chats, so the second prompt went out alone, not after the first one's history.
        assert [len(r["body"]["messages"]) for r in fake.requests] == [1, 1], fake.requests
        browser.eval("document.querySelector('#tabs .tab').click()")
        assert browser.eval("document.querySelector('.msg.user .text').innerText") == "Say hello"
        # A chat id names the owner's stored chat: each must be this visitor's own, never a
        # counter that the next visitor of the same owner would reuse (and so resume).
        ids = browser.eval("[...chats.keys()]")
        assert len(set(ids)) == 2 and all(re.fullmatch(r"web-[0-9a-f]{24}", i) for i in ids), ids
        browser.call("Page.reload")
        browser.wait_for("document.getElementById('status')?.className === 'open'", "the page to reconnect")
        again = browser.eval("[...chats.keys()]")
        assert len(again) == 1 and again[0] not in ids, (ids, again)

        shot = browser.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(png)
    finally:
        browser.close()
        served.stop()
