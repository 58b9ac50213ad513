"""The web chat page (`GET /`), driven by real headless Chromium over the DevTools protocol.

Against `oy3o serve` without a store: it loads the models, streams an answer, keeps a second
chat. With a SQLite store and two tokens: a streamed markdown answer (highlighted
code, a table, folded reasoning, drawn block by block), answers that try to run script (inert),
images attached by upload, paste and drop (sent to the upstream), and the owner's stored chats
listed and reopened after a reload (another token sees none of them). Screenshots are kept under
target/test-artifacts/ (web-page.png, web-markdown.png, web-upload.png, web-reopened.png,
web-narrow.png).

The server is the `oy3o` binary (`$OY3O_BIN`, else target/release or target/debug, else built);
`OY3O_BIN=target/debug/examples/serve` (`cargo build -p oy3o-server --example serve`) runs the
same server without building the local model."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest

from conftest import RECORDED_ANSWER, ROOT

websockets_sync = pytest.importorskip("websockets.sync.client")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "target/test-artifacts"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium package (scripts/setup installs it)")


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

    def screenshot(self, name: str) -> None:
        """Saves the page as target/test-artifacts/NAME (a real PNG of the drawn page)."""
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / name).write_bytes(png)

    def open(self, url: str) -> None:
        """Navigates and waits for the page's WebSocket to connect."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.getElementById('status')?.className === 'open' && "
                      "document.getElementById('model').options.length > 0", "the page to connect")

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


def answered(n: int) -> str:
    """`n` answers in the open chat, the last one finished (Send is enabled again)."""
    return (f"document.querySelectorAll('.msg.assistant').length === {n} && "
            "!document.getElementById('send').disabled && "
            "[...document.querySelectorAll('.msg.assistant')].pop().querySelector('.text').innerText.length > 0")


def listed(browser: Browser) -> list:
    """The chat list as shown: [(id, title)], top first."""
    return browser.eval("[...document.querySelectorAll('#chat-list li')].map(li => "
                        "[li.dataset.id, li.querySelector('.name').innerText])")


# ---------------------------------------------------------------- `oy3o serve`, with or without a store

TOKENS = ("t-alice-5d1c", "t-bob-93fa")


def oy3o_binary() -> str:
    """``oy3o``: ``$OY3O_BIN``, else the release build (``cargo test --release`` makes it), else
    the debug build, else built now (release, as scripts/test builds)."""
    given = os.environ.get("OY3O_BIN")
    if given:
        return given
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        if (target / profile / "oy3o").exists():
            return str(target / profile / "oy3o")
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("oy3o is not built and cargo is not available to build it")
    subprocess.run([cargo, "build", "--release", "-p", "oy3o-cli", "--bin", "oy3o"], cwd=ROOT, check=True)
    return str(target / "release" / "oy3o")


class Serve:
    """``oy3o serve --port 0 --config FILE``: the fake as its `openai` provider, a SQLite store
    in a temporary folder, two tokens (each its own owner) and ``max_frame_bytes``."""

    def __init__(self, fake_base_url: str, max_frame_bytes: int = 1 << 20, store: bool = True,
                 tokens: tuple = TOKENS) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="oy3o-web-"))
        config = self.home / "oy3o.toml"
        config.write_text(
            f'model = "openai:gpt-4o-mini"\n'
            f'store = {json.dumps("sqlite:" + str(self.home / "oy3o.db") if store else "none")}\n'
            f'[providers.openai]\nbase_url = {json.dumps(fake_base_url)}\nmax_retries = 0\n'
            f'[server]\ntokens = {json.dumps(list(tokens))}\nmax_frame_bytes = {max_frame_bytes}\n'
        )
        env = {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config"),
               "XDG_DATA_HOME": str(self.home / "data"), "PATH": os.environ.get("PATH", "")}
        self.process = subprocess.Popen(
            [oy3o_binary(), "serve", "--port", "0", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.match(r"listening on http://(\S+)", line)
        assert match, f"unexpected first line from oy3o serve: {line!r}"
        self.address = match.group(1)

    def page(self, token: str | None) -> str:
        return f"http://{self.address}/" + (f"?token={token}" if token else "")

    def get(self, path: str, token: str) -> tuple[int, dict, Any]:
        request = urllib.request.Request(f"http://{self.address}{path}", headers={"Authorization": f"Bearer {token}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def serve(fake):
    server = Serve(fake.base_url)
    yield server
    server.stop()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("needs the chromium package (scripts/setup installs it)")
    b = Browser()
    b.call("Page.enable")
    yield b
    b.close()


MARKDOWN_ANSWER = """## Fibonacci

Here is a **fast** version, with `memo`:

```python
def fib(n, memo={}):
    # cached
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
```

| n | fib(n) |
|---|-------:|
| 10 | 55 |
| 20 | 6765 |

- linear time
- constant *space*
"""

REASONING = "The user wants Fibonacci; show code and a table."


def pieces(text: str, size: int) -> list:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_a_streamed_markdown_answer_is_highlighted_with_its_reasoning_folded(fake, serve, browser):
    fake.script = ([{"reasoning_content": p} for p in pieces(REASONING, 12)]
                   + [{"content": p} for p in pieces(MARKDOWN_ANSWER, 7)])
    fake.pause = 0.01
    browser.open(serve.page(TOKENS[0]))
    # The request controls come from the settings panel.
    browser.eval("document.getElementById('open-settings').click();"
                 "for (const [id, v] of [['temperature', '0.5'], ['max-tokens', '300']]) {"
                 "  const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input')); }"
                 "document.getElementById('close-settings').click();")
    # Record the answer as it is drawn: its text length at each change, and the first block.
    browser.eval("window.seen = []; new MutationObserver(() => {"
                 "  const a = document.querySelector('.msg.assistant .md');"
                 "  if (a) { seen.push(a.innerText.length); if (a.children.length > 1) window.firstBlock ??= a.querySelector('h2'); } })"
                 ".observe(document.getElementById('flow'), {childList: true, subtree: true, characterData: true});")
    send(browser, "Fibonacci in Python?")
    browser.wait_for(answered(1), "the markdown answer to end")
    assert answers(browser)[0]["error"] == ""

    dom = browser.eval("""(() => {
        const a = document.querySelector('.msg.assistant');
        const code = a.querySelector('pre > code.language-python');
        const details = a.querySelector('details.reasoning');
        return {
            heading: a.querySelector('.md h2')?.innerText,
            strong: a.querySelector('.md p strong')?.innerText,
            inlineCode: a.querySelector('.md p code')?.innerText,
            code: code?.innerText,
            keywords: [...(code?.querySelectorAll('span.hl-k') ?? [])].map(s => s.innerText),
            comments: [...(code?.querySelectorAll('span.hl-c') ?? [])].map(s => s.innerText),
            numbers: [...(code?.querySelectorAll('span.hl-n') ?? [])].map(s => s.innerText),
            headers: [...a.querySelectorAll('.md table th')].map(c => c.innerText),
            cells: [...a.querySelectorAll('.md table tbody tr')].map(r => [...r.cells].map(c => c.innerText)),
            align: a.querySelector('.md table td:nth-child(2)')?.style.textAlign,
            items: [...a.querySelectorAll('.md ul > li')].map(li => li.innerText),
            em: a.querySelector('.md ul em')?.innerText,
            reasoningOpen: details?.open, reasoningShown: details && !details.hidden,
            reasoning: details?.querySelector('.thought').textContent,
            summary: details?.querySelector('summary').innerText,
            sameFirstBlock: window.firstBlock === a.querySelector('.md h2'),
        };
    })()""")
    assert dom["heading"] == "Fibonacci" and dom["strong"] == "fast" and dom["inlineCode"] == "memo", dom
    assert dom["code"].strip() == MARKDOWN_ANSWER.split("```python\n")[1].split("```")[0].strip(), dom["code"]
    assert {"def", "if", "return"} <= set(dom["keywords"]), dom
    assert dom["comments"] == ["# cached"] and "2" in dom["numbers"], dom
    assert dom["headers"] == ["n", "fib(n)"] and dom["cells"] == [["10", "55"], ["20", "6765"]], dom
    assert dom["align"] == "right", dom
    assert dom["items"] == ["linear time", "constant space"] and dom["em"] == "space", dom
    assert dom["reasoningShown"] and dom["reasoningOpen"] is False, "reasoning is folded, not hidden"
    assert dom["reasoning"] == REASONING and dom["summary"] == "Reasoning", dom
    # Drawn as it streamed, block by block: many partial states, and the heading, once the next
    # block began, kept as it was (a block that can no longer change is not drawn again).
    partial = sorted(set(browser.eval("seen")))
    assert len(partial) >= 5, partial
    assert dom["sameFirstBlock"], "the first block was drawn again while the answer streamed"
    sent = fake.requests[-1]["body"]
    assert (sent.get("temperature"), sent.get("max_tokens")) == (0.5, 300), sent
    browser.screenshot("web-markdown.png")

    # Narrow screen: the chat list folds away and nothing scrolls sideways but code and tables.
    browser.call("Emulation.setDeviceMetricsOverride", width=390, height=800, deviceScaleFactor=1, mobile=True)
    try:
        layout = browser.eval("({page: document.documentElement.scrollWidth, list: getComputedStyle("
                              "document.getElementById('sidebar')).display, prompt: document.getElementById('prompt')"
                              ".getBoundingClientRect().width})")
        assert layout["page"] <= 390 and layout["list"] == "none" and layout["prompt"] > 150, layout
        browser.screenshot("web-narrow.png")
        browser.eval("document.getElementById('menu').click()")
        assert browser.eval("getComputedStyle(document.getElementById('sidebar')).display") != "none"
        browser.eval("document.getElementById('main').click()")
        assert browser.eval("getComputedStyle(document.getElementById('sidebar')).display") == "none"
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


HOSTILE = """Try these:

<img src=x onerror="window.pwned = 'img'">
<script>window.pwned = 'script'</script>
<svg onload="window.pwned = 'svg'"></svg><iframe srcdoc="<script>parent.pwned='iframe'</script>"></iframe>

[click me](javascript:window.pwned='link') and [data](data:text/html,<script>alert(1)</script>)
and ![pic](javascript:window.pwned='image') and <a href="javascript:window.pwned='a'">a</a>

| <img src=y onerror="window.pwned='cell'"> | `<b onmouseover=x>` |
|---|---|
| **<script>window.pwned='bold'</script>** | [x](https://ok.example/?a=1&b="2") |

```html
<script>window.pwned = 'code'</script>
```
"""


def test_an_answer_cannot_run_script_in_the_page(fake, serve, browser):
    status, headers, _ = serve.get("/", TOKENS[0])
    policy = {k.lower(): v for k, v in headers.items()}["content-security-policy"]
    script_src = next(d.strip() for d in policy.split(";") if d.strip().startswith("script-src"))
    assert status == 200 and "'sha256-" in script_src and "unsafe" not in script_src, policy

    fake.script = [{"content": p} for p in pieces(HOSTILE, 9)]
    browser.open(serve.page(TOKENS[0]))
    send(browser, "be evil")
    browser.wait_for(answered(1), "the hostile answer to end")
    time.sleep(0.5)   # time for any handler to fire
    found = browser.eval("""(() => {
        const md = document.querySelector('.msg.assistant .md');
        return {
            pwned: window.pwned ?? null,
            tags: [...md.querySelectorAll('img, script, svg, iframe, object, embed, [onerror], [onload], [onmouseover]')].map(e => e.outerHTML),
            hrefs: [...md.querySelectorAll('a')].map(a => a.getAttribute('href')),
            text: md.innerText,
        };
    })()""")
    assert found["pwned"] is None, found
    assert found["tags"] == [], found
    assert found["hrefs"] == ['https://ok.example/?a=1&b="2"'], "only the http(s) link is a link: " + str(found)
    for shown in ['<img src=x onerror="window.pwned = \'img\'">', "<script>window.pwned = 'script'</script>", "click me"]:
        assert shown in found["text"], (shown, found["text"])
    # The policy is the second wall: even markup put in by hand cannot run an inline handler.
    browser.eval("document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.pwned=1\">');"
                 "window.violations = 0; document.addEventListener('securitypolicyviolation', () => violations++);")
    browser.eval("document.body.insertAdjacentHTML('beforeend', '<img src=/nothing onerror=\"window.pwned=2\">')")
    browser.wait_for("window.violations > 0", "the policy to refuse the inline handler")
    assert browser.eval("window.pwned ?? null") is None


def png_bytes(width: int = 24, height: int = 16, rgb=(220, 40, 40)) -> bytes:
    """A real PNG (RFC 2083): signature, IHDR, one IDAT of zlib'd rows, IEND."""
    def part(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + part(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + part(b"IDAT", zlib.compress(rows)) + part(b"IEND", b""))


def sent_image_data(body: dict) -> list:
    """Every base64 image the upstream request carried (OpenAI `image_url` data URLs)."""
    found = []
    for message in body.get("messages", []):
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if url.startswith("data:image/"):
                found.append(url.split(",", 1)[1])
    return found


def test_images_are_attached_by_upload_paste_and_drop_and_reach_the_model(fake, browser, tmp_path):
    server = Serve(fake.base_url, max_frame_bytes=256 << 10)
    try:
        browser.open(server.page(TOKENS[0]))
        uploaded, pasted, dropped = png_bytes(rgb=(220, 40, 40)), png_bytes(rgb=(40, 160, 60)), png_bytes(rgb=(40, 60, 200))
        (tmp_path / "red.png").write_bytes(uploaded)
        # Upload: the file input, given a file as a person picking it would.
        document = browser.call("DOM.getDocument")
        node = browser.call("DOM.querySelector", nodeId=document["root"]["nodeId"], selector="#file")
        browser.call("DOM.setFileInputFiles", files=[str(tmp_path / "red.png")], nodeId=node["nodeId"])
        browser.wait_for("document.querySelectorAll('#attachments .chip').length === 1", "the uploaded file")
        # Paste and drop: the events a browser fires, carrying files.
        for event, target, data, name in [("paste", "prompt", pasted, "green.png"), ("drop", "main", dropped, "blue.png")]:
            b64 = base64.b64encode(data).decode()
            make = ("new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true})" if event == "paste"
                    else "new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})")
            browser.eval(f"(() => {{ const bytes = Uint8Array.from(atob('{b64}'), c => c.charCodeAt(0));"
                         f"const dt = new DataTransfer(); dt.items.add(new File([bytes], '{name}', {{type: 'image/png'}}));"
                         f"document.getElementById('{target}').dispatchEvent({make}); }})()")
        browser.wait_for("document.querySelectorAll('#attachments .chip').length === 3", "three attachments")
        assert browser.eval("[...document.querySelectorAll('#attachments .chip .label')].map(l => l.innerText.split(' ·')[0])") \
            == ["red.png", "green.png", "blue.png"]
        assert "256 KB" in browser.eval("document.getElementById('hint').innerText"), "the limit is shown"
        # Checked before sending: a type the models cannot take, and a file past the limit.
        browser.eval("attach([new File(['PK'], 'notes.zip', {type: 'application/zip'}),"
                     " new File([new Uint8Array(300 << 10)], 'huge.png', {type: 'image/png'})])")
        refusal = browser.wait_for("document.getElementById('notice').innerText", "the refusal")
        assert "notes.zip: type application/zip is not supported" in refusal and "huge.png" in refusal, refusal
        assert browser.eval("document.querySelectorAll('#attachments .chip').length") == 3

        send(browser, "What colours are these?")
        browser.wait_for("document.querySelectorAll('.msg.assistant').length === 1 && "
                         "!document.getElementById('send').disabled", "the reply about the images")
        result = answers(browser)[0]
        assert result["error"] == "", result
        assert browser.eval("document.querySelectorAll('.msg.user .files img').length") == 3
        assert browser.eval("document.querySelectorAll('#attachments .chip').length") == 0, "sent, so cleared"
        images = sent_image_data(fake.requests[-1]["body"])
        assert sorted(images) == sorted(base64.b64encode(d).decode() for d in (uploaded, pasted, dropped)), \
            "the upstream received the three images"
        browser.screenshot("web-upload.png")
    finally:
        server.stop()


def test_stored_chats_are_listed_and_reopened_after_a_reload_for_their_owner_only(fake, serve, browser):
    alice, bob = TOKENS
    browser.open(serve.page(alice))
    send(browser, "First question")
    browser.wait_for(answered(1), "the first chat's answer")
    first_id = browser.eval("current")
    browser.eval("document.getElementById('new').click()")
    send(browser, "Second question")
    browser.wait_for(answered(1), "the second chat's answer")
    second_id = browser.eval("current")
    assert first_id != second_id and all(re.fullmatch(r"web-[0-9a-f]{24}", i) for i in (first_id, second_id))

    # After a reload: the page knows nothing but what the server stored for this token.
    browser.open(serve.page(alice))
    browser.wait_for(f"document.querySelectorAll('#chat-list li[data-id^=\"web-\"]').length >= 2", "the stored chats")
    shown = listed(browser)
    assert shown[1:] == [[second_id, "Second question"], [first_id, "First question"]], shown
    assert shown[0][0] not in (first_id, second_id), "the fresh chat of the reloaded page comes first"
    browser.eval(f"document.querySelector('#chat-list li[data-id=\"{first_id}\"]').click()")
    browser.wait_for(answered(1), "the reopened chat's turns")
    assert browser.eval("document.querySelector('.msg.user .text').innerText") == "First question"
    assert normalize(answers(browser)[0]["text"]) == normalize(RECORDED_ANSWER)

    # Continuing it (typed: Shift+Enter is a new line, Enter sends) resumes the stored conversation.
    browser.eval("document.getElementById('prompt').focus()")
    browser.call("Input.insertText", text="Follow-up")
    for modifiers in (8, 0):   # 8: Shift
        if modifiers == 0:
            browser.call("Input.insertText", text="second line")
        for kind in ("keyDown", "keyUp"):
            browser.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                         modifiers=modifiers, **({"text": "\r"} if kind == "keyDown" else {}))
    browser.wait_for(answered(2), "the follow-up's answer")
    assert browser.eval("[...document.querySelectorAll('.msg.user .text')].pop().innerText") == "Follow-up\nsecond line"
    sent = [m["content"] for m in fake.requests[-1]["body"]["messages"]]
    assert sent == ["First question", RECORDED_ANSWER, "Follow-up\nsecond line"], sent
    assert browser.eval("current") == first_id, "the same chat id, not a new one"
    browser.screenshot("web-reopened.png")

    # Another token sees none of it: not in its list, and not by id.
    status, _, body = serve.get("/chats", bob)
    assert status == 200 and json.loads(body)["chats"] == [], body
    status, _, body = serve.get("/chats", alice)
    assert [c["id"] for c in json.loads(body)["chats"]] == [first_id, second_id]
    ws = websockets_sync.connect(f"ws://{serve.address}/ws?token={bob}")
    try:
        ws.send(json.dumps({"id": first_id, "ref": 1, "history": True}))
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
    finally:
        ws.close()
    assert frames[0]["type"] == "error" and frames[0]["code"] == "not_found", frames
    assert "First question" not in json.dumps(frames)
    browser.open(serve.page(bob))
    time.sleep(0.5)
    assert [i for i, _ in listed(browser) if i in (first_id, second_id)] == [], listed(browser)


@needs_chromium
def test_the_web_page_streams_an_answer_in_chromium(fake):
    served = Serve(fake.base_url, store=False, tokens=())
    browser = Browser()
    try:
        browser.call("Page.enable")
        browser.open(served.page(None))
        models = browser.eval("[...document.getElementById('model').options].map(o => o.value)")
        assert "openai:gpt-4o-mini" in models, f"the model list comes from /v1/models: {models}"
        send(browser, "Say hello")
        browser.wait_for(answered(1), "the answer to end")
        first = answers(browser)
        assert first[0]["error"] == "", first
        assert normalize(first[0]["text"]) == normalize(RECORDED_ANSWER)

        # A second chat; the first keeps its flow.
        browser.eval("document.getElementById('new').click()")
        assert browser.eval("document.querySelectorAll('.msg').length") == 0, "a new chat starts empty"
        send(browser, "And again")
        browser.wait_for(answered(1), "the second chat's answer")
        assert normalize(answers(browser)[0]["text"]) == normalize(RECORDED_ANSWER)
        assert [title for _, title in listed(browser)] == ["And again", "Say hello"], "the last used first"
        # Two chats, so the second prompt went out alone, not after the first one's history.
        assert [len(r["body"]["messages"]) for r in fake.requests] == [1, 1], fake.requests
        browser.eval("document.querySelectorAll('#chat-list li')[1].click()")
        assert browser.eval("document.querySelector('.msg.user .text').innerText") == "Say hello"
        # Without a store the page says chats last as long as the page.
        assert "no store" in browser.eval("document.getElementById('chat-note').innerText")
        # A chat id names the owner's stored chat: each must be this chat's own, never a
        # counter that the next visitor of the same owner would reuse (and so resume).
        ids = browser.eval("[...chats.keys()]")
        assert len(set(ids)) == 2 and all(re.fullmatch(r"web-[0-9a-f]{24}", i) for i in ids), ids
        browser.call("Page.reload")
        browser.wait_for("document.getElementById('status')?.className === 'open'", "the page to reconnect")
        again = browser.eval("[...chats.keys()]")
        assert len(again) == 1 and again[0] not in ids, (ids, again)
        browser.screenshot("web-page.png")
    finally:
        browser.close()
        served.stop()


def test_the_settings_panel_sends_the_request_controls_and_keeps_them(fake, serve, browser):
    browser.open(serve.page(TOKENS[0]))
    browser.eval("window.sentFrames = []; const original = WebSocket.prototype.send;"
                 "WebSocket.prototype.send = function (data) { sentFrames.push(JSON.parse(data)); return original.call(this, data); };")
    fields = {"temperature": "0.5", "max-tokens": "64", "reasoning": "high", "stop-sequences": "END\n###",
              "schema": "{not json"}
    browser.eval("document.getElementById('open-settings').click();"
                 f"for (const [id, v] of Object.entries({json.dumps(fields)})) {{"
                 "  const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input')); }"
                 "const box = document.getElementById('search'); box.checked = true; box.dispatchEvent(new Event('input'));")
    # A schema that is not JSON is named, and nothing is sent.
    assert "schema: not JSON" in browser.eval("document.getElementById('settings-error').innerText")
    send(browser, "Structured, please")
    assert "schema" in browser.eval("document.getElementById('notice').innerText")
    assert browser.eval("sentFrames.length") == 0
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    browser.eval(f"const s = document.getElementById('schema'); s.value = {json.dumps(json.dumps(schema))};"
                 "s.dispatchEvent(new Event('input'));")
    assert browser.eval("document.getElementById('settings-error').innerText") == ""
    send(browser, "Structured, please")
    frame = browser.wait_for("sentFrames[0]", "the request frame")
    assert frame["prompt"] == "Structured, please" and frame["model"] == "openai:gpt-4o-mini", frame
    assert frame["options"] == {"temperature": 0.5, "max_tokens": 64, "reasoning": "high", "search": True,
                                "stop": ["END", "###"], "schema": schema}, frame
    browser.wait_for("!document.getElementById('send').disabled", "the reply to end")
    # Kept in the browser: a reload shows them again.
    browser.open(serve.page(TOKENS[0]))
    kept = browser.eval("({t: temperature.value, m: document.getElementById('max-tokens').value, r: reasoning.value,"
                        " s: search.checked, stop: document.getElementById('stop-sequences').value,"
                        " schema: JSON.parse(document.getElementById('schema').value)})")
    assert kept == {"t": "0.5", "m": "64", "r": "high", "s": True, "stop": "END\n###", "schema": schema}, kept
