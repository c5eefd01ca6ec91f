"""A small static web site (HTML, CSS, JS, JSON, images, a download) and an nginx that serves it."""

from __future__ import annotations

import json
import random
from pathlib import Path

# path -> size in bytes; the mix a typical small site serves
SITE_FILES: dict[str, int] = {
    "index.html": 6_000,
    "about.html": 3_500,
    "css/site.css": 18_000,
    "js/app.js": 95_000,
    "js/vendor.js": 260_000,
    "img/logo.png": 12_000,
    "img/hero.jpg": 180_000,
    "api/status.json": 400,
    "api/items.json": 24_000,
    "downloads/report.pdf": 1_200_000,
}
# what clients ask for, weighted: pages and small assets far more often than the big download
REQUEST_MIX: list[tuple[str, int]] = [
    ("/", 20),
    ("/index.html", 10),
    ("/about.html", 5),
    ("/css/site.css", 15),
    ("/js/app.js", 10),
    ("/js/vendor.js", 5),
    ("/img/logo.png", 15),
    ("/img/hero.jpg", 5),
    ("/api/status.json", 8),
    ("/api/items.json", 5),
    ("/downloads/report.pdf", 1),
    ("/missing.html", 1),
]


def write_site(root: Path, seed: int = 7) -> Path:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    for rel, size in SITE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".png", ".jpg", ".pdf")):
            path.write_bytes(rng.randbytes(size))
        elif rel.endswith(".json"):
            items = [{"id": i, "name": f"item-{i}", "price": rng.randint(1, 999)} for i in range(size // 40 + 1)]
            path.write_text(json.dumps(items)[:size])
        else:
            words = ["lorem", "ipsum", "dolor", "sit", "amet", "<div>", "</div>", "{", "}", "function", "var"]
            path.write_text(" ".join(rng.choice(words) for _ in range(size // 5))[:size])
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        d.chmod(0o755)
    for f in root.rglob("*"):
        if f.is_file():
            f.chmod(0o644)
    return root


def request_paths() -> list[str]:
    """The request mix expanded by weight (for a load generator to cycle through)."""
    return [path for path, weight in REQUEST_MIX for _ in range(weight)]


def nginx_config(workdir: Path, port: int, workers: int) -> Path:
    """An nginx configuration serving ``workdir/www`` on 127.0.0.1:port, in the foreground."""
    site = write_site(workdir / "www")
    tmp = workdir / "nginx-tmp"
    tmp.mkdir(exist_ok=True)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process on;
worker_processes {workers};
user nobody nogroup;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {workdir / "access.log"};
{temp_paths}
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    types {{
        text/html html; text/css css; application/javascript js; application/json json;
        image/png png; image/jpeg jpg; application/pdf pdf;
    }}
    default_type application/octet-stream;
    gzip on;
    gzip_types text/css application/javascript application/json;
    server {{
        listen 127.0.0.1:{port};
        root {site};
        location = /healthz {{ access_log off; return 200 "ok\\n"; }}
    }}
}}
"""
    )
    return conf


def nginx_argv(workdir: Path, conf: Path) -> list[str]:
    return ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0
