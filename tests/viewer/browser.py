"""Headless Chromium for tests: Debian's `chromium` package, run as a subprocess.

The flags are the ones this machine needs: no sandbox (tests run as root), no GPU (software
WebGL), and no background networking (the network is closed; Chromium would otherwise retry).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--hide-scrollbars",
]
MISSING = (
    "headless Chromium is not installed: `apt-get install -y chromium` (Debian's package, "
    "/usr/bin/chromium) to run the browser checks of the report and the viewer"
)


def chromium() -> str:
    """Path of the Chromium binary, or skips the calling test with how to install it."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(MISSING)


# Chromium's helper processes may still hold files in the profile for a moment after it exits
def _run(url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(url: str, budget_ms: int = 5000, timeout: float = 60) -> str:
    """The page's DOM after `budget_ms` of virtual time (scripts run, media metadata loads)."""
    done = _run(url, ["--dump-dom", f"--virtual-time-budget={budget_ms}"], timeout)
    assert done.returncode == 0, f"chromium failed on {url}: {done.stderr[-2000:]}"
    return done.stdout


def screenshot(
    url: str, png: Path, size=(1000, 700), budget_ms: int = 8000, timeout: float = 90
) -> np.ndarray:
    """[H, W, 3] uint8 screenshot of `url` (also written to `png`)."""
    import imageio.v3 as iio

    args = [
        f"--window-size={size[0]},{size[1]}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={png}",
    ]
    done = _run(url, args, timeout)
    assert done.returncode == 0 and Path(png).is_file(), (
        f"no screenshot of {url}: {done.stderr[-2000:]}"
    )
    return np.asarray(iio.imread(png))[..., :3]


def screenshot_when(
    url: str, png: Path, ready, size=(1000, 700), timeout: float = 60
) -> np.ndarray:
    """[H, W, 3] uint8 screenshot of `url`, taken in real time once `ready()` is true and the page
    has stopped changing (two captures half a second apart are identical).

    Drives Chromium over the DevTools protocol (a websocket on loopback), for pages whose content
    arrives later than any fixed virtual-time budget can promise (a viewer's first frame, which
    viser then fades in).
    """
    import base64

    import imageio.v3 as iio

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={size[0]},{size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            page = _DevTools(_page_socket(browser, timeout))
            page.call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            while not ready():
                assert time.monotonic() < deadline, f"{url} was not ready within {timeout} s"
                time.sleep(0.1)
            data, previous = None, ""
            while data != previous:
                assert time.monotonic() < deadline, f"{url} kept changing for {timeout} s"
                time.sleep(0.5)
                previous, data = data, page.call("Page.captureScreenshot", format="png")["data"]
            page.close()
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    Path(png).write_bytes(base64.b64decode(data))
    return np.asarray(iio.imread(png))[..., :3]


def _page_socket(browser: subprocess.Popen, timeout: float) -> str:
    """The DevTools websocket address of the browser's first page."""
    import json
    import re
    import urllib.request

    deadline = time.monotonic() + timeout
    for line in browser.stderr:  # Chromium prints its DevTools address once listening
        found = re.search(r"DevTools listening on ws://([^/]+)/", line)
        if found:
            break
        assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
    else:
        raise AssertionError("Chromium exited before opening its DevTools port")
    with urllib.request.urlopen(f"http://{found.group(1)}/json/list", timeout=timeout) as reply:
        pages = [t for t in json.load(reply) if t["type"] == "page"]
    return pages[0]["webSocketDebuggerUrl"]


class _DevTools:
    """Request/response calls over one DevTools websocket (events in between are skipped)."""

    def __init__(self, address: str):
        from websockets.sync.client import connect

        self.socket = connect(address, max_size=2**26)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        import json

        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def close(self) -> None:
        self.socket.close()


DRIVER_MISSING = (
    "headless Chromium's driver is not installed: `apt-get install -y chromium chromium-driver` "
    "(Debian's packages, /usr/bin/chromedriver) and `pip install selenium` to run the studio's checks"
)


def selenium_chromium(size=(1200, 800)):
    """A Selenium WebDriver on headless Chromium, or skips the calling test with how to install it."""
    binary = chromium()
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.skip(DRIVER_MISSING)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(DRIVER_MISSING)
    options = Options()
    options.binary_location = binary
    for flag in [f for f in FLAGS if f != "--headless"]:
        options.add_argument(flag)
    options.add_argument("--headless=new")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    return webdriver.Chrome(options=options, service=Service(driver_path))
