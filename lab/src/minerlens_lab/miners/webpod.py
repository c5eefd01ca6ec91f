"""The web pod a miner hides in: a few static pages for ``python3 -m http.server``, the pod's entrypoint
that starts the miner in the background, and its clients."""

from __future__ import annotations

import http.client
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

WEB_PAGES = {
    "index.html": "<!doctype html><title>shop</title><h1>Welcome</h1><a href='/products.html'>products</a>\n",
    "products.html": "<!doctype html><ul>" + "".join(f"<li>item {i}</li>" for i in range(200)) + "</ul>\n",
    "app.js": "console.log('ready');\n" * 200,
}


def write_web_pages(workdir: Path) -> None:
    """The pod's static site, in ``workdir/www``."""
    www = workdir / "www"
    www.mkdir(exist_ok=True)
    for page, text in WEB_PAGES.items():
        (www / page).write_text(text)


def web_entrypoint(workdir: Path, miner: Sequence[str], port: int) -> Path:
    """``workdir/entrypoint.sh``: the web pod's entrypoint (``http.server`` on 127.0.0.1:``port`` serving
    ``workdir/www``), with what an intruder appended: ``miner`` started in the background."""
    # the system's python, as a container image has it (not a version-manager shim)
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
    script = workdir / "entrypoint.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# the web pod's entrypoint, with what an intruder appended: a miner in the background\n"
        f"{shlex.join(miner)} >/dev/null 2>&1 &\n"
        f"exec {shlex.quote(python)} -m http.server {port} --bind 127.0.0.1"
        f" --directory {shlex.quote(str(workdir / 'www'))}\n"
    )
    return script


def http_load(port: int, stop: threading.Event, rate_hz: float = 20.0) -> tuple[int, int]:
    """GET the pod's pages on 127.0.0.1:``port`` at about ``rate_hz`` until ``stop``; (served, errors)."""
    pages = list(WEB_PAGES)
    served = errors = 0
    deadline = time.monotonic() + 15
    while not stop.is_set():  # wait for the server
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            probe.connect()
            break
        except OSError:
            if time.monotonic() > deadline:
                return 0, 1
            stop.wait(0.05)
        finally:
            probe.close()
    n = 0
    while not stop.wait(1.0 / rate_hz):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/" + pages[n % len(pages)])
            conn.getresponse().read()
            served += 1
        except (OSError, http.client.HTTPException):
            errors += 1
        finally:
            conn.close()
        n += 1
    return served, errors
