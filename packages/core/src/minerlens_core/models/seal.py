"""The seal of an artifact: ``manifest.sha256`` (always) and ``manifest.sig`` (optional) over ``manifest.json``.

The manifest decides how a model scores (threshold, feature spec, ONNX input/output names) and lists
the sha256 of every other file, so covering its exact bytes covers the whole artifact:

* ``manifest.sha256`` (``<hex>  manifest.json``, checkable with ``sha256sum -c``) detects any edit of
  the manifest made without re-sealing it: a hand-edited threshold, a file swapped and its hash
  updated in the manifest, a truncated copy. Whoever can write the directory can also re-seal it;
* ``manifest.sig`` (Ed25519, ``minerlens_core.models.signing``) stops that too: with a public key
  configured (``MINERLENS_MODEL_PUBKEY``) an artifact sealed by anyone else is refused.

``write_manifest`` is how every writer (training, tests, tools) writes a manifest: it seals it. A
signature does not survive a new manifest (it is removed); sign again after re-sealing.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from minerlens_core.errors import ArtifactError, ArtifactIntegrityError
from minerlens_core.models.layout import DIGEST_FILE, MANIFEST, MAX_MANIFEST_BYTES, SIGNATURE_FILE
from minerlens_core.models.signing import Trust, signature_document, verify_signature

_DIGEST_LINE = re.compile(rb"([0-9a-f]{64})(?:  \*?" + re.escape(MANIFEST.encode()) + rb")?\s*")


def read_manifest_bytes(directory: Path) -> bytes:
    """The bytes of ``manifest.json`` (at most ``MAX_MANIFEST_BYTES``); ``ArtifactError`` if absent or unreadable."""
    path = Path(directory) / MANIFEST
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        msg = f"{directory}: not a model artifact (no {MANIFEST})"
        raise ArtifactError(msg) from None
    except OSError as exc:
        msg = f"{path}: unreadable artifact manifest: {exc.strerror or exc}"
        raise ArtifactError(msg) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        msg = f"{path}: larger than {MAX_MANIFEST_BYTES} bytes, not a manifest: refusing it"
        raise ArtifactIntegrityError(msg)
    return raw


def recorded_digest(directory: Path) -> str:
    """The sha256 ``manifest.sha256`` records; ``ArtifactIntegrityError`` if missing or malformed."""
    path = Path(directory) / DIGEST_FILE
    try:
        with path.open("rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        msg = (
            f"{directory}: {DIGEST_FILE} is missing, nothing vouches for {MANIFEST}: refusing it "
            f"(a deliberate edit is sealed with: minerlens model seal {directory})"
        )
        raise ArtifactIntegrityError(msg) from None
    except OSError as exc:
        msg = f"{path}: unreadable: {exc.strerror or exc}"
        raise ArtifactIntegrityError(msg) from None
    m = _DIGEST_LINE.fullmatch(raw)
    if m is None:
        msg = f"{path}: not '<sha256>  {MANIFEST}': refusing the artifact"
        raise ArtifactIntegrityError(msg)
    return m.group(1).decode()


def check_seal(directory: Path, raw: bytes, trust: Trust) -> str:
    """Verify the digest (and, when ``trust`` has a key, the signature) of the manifest bytes ``raw``.

    Returns the manifest's sha256. Raises ``ArtifactIntegrityError`` (``ArtifactSignatureError`` for
    signatures) with the one reason the artifact is refused.
    """
    digest = hashlib.sha256(raw).hexdigest()
    recorded = recorded_digest(directory)
    if digest != recorded:
        msg = (
            f"{Path(directory) / MANIFEST}: sha256 {digest} != {recorded} recorded in {DIGEST_FILE}: "
            "the manifest was modified after it was sealed, refusing the artifact"
        )
        raise ArtifactIntegrityError(msg)
    if trust.public_key is not None:
        verify_signature(Path(directory), raw, trust.public_key)
    return digest


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_seal(directory: Path, raw: bytes) -> str:
    """Record the sha256 of the manifest bytes ``raw`` in ``manifest.sha256``; drop a stale signature."""
    digest = hashlib.sha256(raw).hexdigest()
    directory = Path(directory)
    (directory / SIGNATURE_FILE).unlink(missing_ok=True)
    _write_atomic(directory / DIGEST_FILE, f"{digest}  {MANIFEST}\n".encode())
    return digest


def write_manifest_bytes(directory: Path, raw: bytes) -> str:
    """Write ``manifest.json`` and seal it; return its sha256."""
    directory = Path(directory)
    (directory / SIGNATURE_FILE).unlink(missing_ok=True)
    _write_atomic(directory / MANIFEST, raw)
    return write_seal(directory, raw)


def write_signature(directory: Path, raw: bytes, private_key_path: Path) -> str:
    """Sign the manifest bytes ``raw`` of ``directory`` with the key file; return the key id."""
    from minerlens_core.models.signing import key_id, load_private_key

    key = load_private_key(private_key_path)
    _write_atomic(Path(directory) / SIGNATURE_FILE, signature_document(raw, key))
    return key_id(key.public_key())
