"""Open a page in headless Chromium over the DevTools pipe: evaluate JavaScript, collect errors.

A few dozen lines of the Chrome DevTools Protocol (CDP) over ``--remote-debugging-pipe`` (JSON
messages separated by NUL bytes on file descriptors 3 and 4), so the viewer's tests and benchmark
need no websocket client, no Playwright and no downloaded browser. The network is switched off
(``Network.emulateNetworkConditions`` offline, and every host name resolves to nothing), so a page
that needed a server or a CDN would show it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome binary on ``PATH``, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class HeadlessPage:
    """One offline tab of a fresh headless Chromium profile; use as a context manager.

    ``errors`` collects console errors, uncaught exceptions and failed loads as text.
    """

    def __init__(self, binary: str | None = None, timeout: float = 30.0) -> None:
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError(f"no Chromium binary on PATH ({', '.join(CHROMIUM_NAMES)})")
        self.timeout = timeout
        self.errors: list[str] = []
        self._profile = tempfile.TemporaryDirectory(prefix="perfrdiff-chromium-")
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def attach_pipes() -> None:  # runs in the child: CDP reads fd 3, writes fd 4
            # Copy above 10 first: a pipe end may itself be fd 3 or 4. dup2 onto another
            # number makes the copy inheritable; Python's own fds are not.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            for target, fd in zip((3, 4), high, strict=True):
                os.dup2(fd, target)

        self._process = subprocess.Popen(
            [binary, *_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=attach_pipes,
            close_fds=False,  # would close fds 3 and 4 after attach_pipes
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method)
        self.call(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def __enter__(self) -> HeadlessPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    def _send(self, method: str, params: dict | None, session: str | None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium in time")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._note_event(message)

    def call(self, method: str, params: dict | None = None) -> dict:
        """Send a CDP command to the tab; returns its result."""
        return self._call(method, params, self._session)

    def _note_event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method is None:
            return
        self._events.append(message)
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url')}")

    def open(self, path: str | Path) -> None:
        """Load a local file and wait for its ``load`` event."""
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_for_event("Page.loadEventFired")

    def wait_for_event(self, method: str) -> dict:
        """Wait for the next (or an already received) event ``method``; returns its params."""
        deadline = time.monotonic() + self.timeout
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method:
                    del self._events[index]
                    return event.get("params", {})
            self._note_event(self._receive(deadline))

    def evaluate(self, expression: str, gesture: bool = False) -> Any:
        """Value of a JavaScript expression (a Promise is awaited); ``gesture`` runs it as a
        user's click would (what ``audio.play()`` needs under a default autoplay policy)."""
        result = self.call(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": gesture,
            },
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"JavaScript error in {expression[:80]!r}: {text}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still false after {timeout or self.timeout} s")
            time.sleep(0.02)
