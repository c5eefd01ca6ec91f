"""A real explainer process and a headless Debian Chromium driven by selenium, for the console's browser
tests. Nothing is downloaded: the browser and its driver are the system's (``scripts/install-system-deps.sh``);
without them the tests skip, or fail under ``MINERLENS_REQUIRE_SERVICES=1`` (CI)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.services import services_required

CHROMIUM = os.environ.get("MINERLENS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MINERLENS_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".local" / "artifacts" / "console"


def require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (requirements/dev.txt)")
    if missing:
        message = f"headless browser missing: {', '.join(missing)} (scripts/install-system-deps.sh)"
        if services_required():
            pytest.fail(f"{message} [MINERLENS_REQUIRE_SERVICES=1]", pytrace=False)
        pytest.skip(message)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1400) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--lang=en-US",
                "--disable-extensions", "--no-first-run", "--disable-background-networking"):  # fmt: skip
        opts.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            proc = service.process
            if proc is not None and proc.poll() is None:  # quit failed: end the driver we started, by pid
                os.kill(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def explainer_process(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``uvicorn minerlens_explainer.app:app_from_env`` on 127.0.0.1:port, until /readyz answers 200."""
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "minerlens_explainer.app:app_from_env",
           "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the explainer exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the explainer did not become ready: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def screenshot(driver: Any, name: str, directory: Path) -> Path:
    """A full-page PNG (the window grown to the page's height) in ``directory`` and in .local/artifacts."""
    driver.set_window_size(1280, 600)  # shrink first: scrollHeight is at least the window's height
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height + 140, 600), 6000))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    driver.save_screenshot(str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / path.name)
    return path


_RGB = re.compile(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)")

EFFECTIVE_COLOURS = """
const el = arguments[0];
const fg = getComputedStyle(el).color;
let node = el, bg = 'rgba(0, 0, 0, 0)';
while (node && node.nodeType === 1) {
  const c = getComputedStyle(node).backgroundColor;
  const m = c.match(/rgba\\(.*,\\s*([\\d.]+)\\)$/);
  if (!(m && parseFloat(m[1]) === 0) && c !== 'transparent') { bg = c; break; }
  node = node.parentElement;
}
return [fg, bg === 'rgba(0, 0, 0, 0)' ? 'rgb(255, 255, 255)' : bg];
"""


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def parse_rgb(css: str) -> tuple[float, float, float]:
    m = _RGB.fullmatch(css.strip())
    if m is None:
        msg = f"not an rgb() colour: {css!r}"
        raise ValueError(msg)
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def contrast(fg: str, bg: str) -> float:
    """WCAG 2.x contrast ratio of two computed CSS colours."""
    a, b = _luminance(parse_rgb(fg)), _luminance(parse_rgb(bg))
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def contrast_of(driver: Any, element: Any) -> tuple[float, str, str]:
    fg, bg = driver.execute_script(EFFECTIVE_COLOURS, element)
    return contrast(fg, bg), fg, bg
