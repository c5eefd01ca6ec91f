"""A render/transcode worker: ``python -m minerlens_lab.benign.render_worker --port P --threads N
--workdir D``.

Keeps one TCP connection to the dispatcher; for each job line it runs ffmpeg (a generated test clip ->
H.264, ``-threads N``) into the work directory, reports ``{"id", "frames", "bytes"}`` on the same
connection, deletes the output and waits for the next job.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
from pathlib import Path


def render(job: dict[str, object], threads: int, workdir: Path) -> dict[str, object]:
    out = workdir / f"render-{job['id']}.mp4"
    argv = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={job['size']}:rate={job['rate']}:duration={job['seconds']}",
        "-c:v",
        "libx264",
        "-preset",
        str(job["preset"]),
        "-threads",
        str(threads),
        "-y",
        str(out),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    frames = [
        int(v) for k, _, v in (ln.partition("=") for ln in done.stdout.splitlines()) if k == "frame" and v.isdigit()
    ]
    return {
        "id": job["id"],
        "frames": frames[-1] if frames else 0,
        "bytes": size,
        "status": done.returncode,
        "error": done.stderr[-200:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", type=Path, required=True)
    args = ap.parse_args(argv)
    with socket.create_connection(("127.0.0.1", args.port)) as s:
        f = s.makefile("rwb")
        while line := f.readline():
            result = render(json.loads(line), args.threads, args.workdir)
            f.write((json.dumps(result) + "\n").encode())
            f.flush()
            if result["status"] != 0:
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
