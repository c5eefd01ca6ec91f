"""Ed25519 signatures of model manifests, and which public key (if any) a loader requires.

``manifest.sig`` is JSON: ``{"algorithm": "ed25519", "key_id": ..., "manifest_sha256": ...,
"signature": <base64>}``. The signature covers ``SIGNATURE_CONTEXT`` followed by the exact bytes of
``manifest.json``, and the manifest lists the sha256 of every other file: one signature vouches for
the whole artifact (threshold, feature spec, versions, model files). ``key_id`` (the first 16 hex
digits of the sha256 of the raw public key) and ``manifest_sha256`` only make refusals readable; they
are not trusted.

Keys are PEM files (PKCS#8 private key, SubjectPublicKeyInfo public key), the formats of
``minerlens model keygen`` and of ``openssl genpkey -algorithm ed25519`` / ``openssl pkey -pubout``.
A loader requires a signature when ``MINERLENS_MODEL_PUBKEY`` names a public key file
(:class:`ModelTrustSettings`); without it, the manifest digest alone is checked. ``cryptography`` is
imported only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from minerlens_core.errors import ArtifactError, ArtifactIntegrityError, ConfigurationError
from minerlens_core.models.layout import MANIFEST, SIGNATURE_FILE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_CONTEXT = b"minerlens model manifest v1\n"
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 4096
PUBKEY_ENV = "MINERLENS_MODEL_PUBKEY"


class ArtifactSignatureError(ArtifactIntegrityError):
    """The artifact's signature is missing, malformed, made with another key, or does not verify."""


class ArtifactTrustError(ArtifactError):
    """The public key artifacts must be signed with cannot be used: every artifact is refused."""


class ModelTrustSettings(BaseSettings):
    """Which public key model artifacts must be signed with. Environment: ``MINERLENS_MODEL_PUBKEY``."""

    model_config = SettingsConfigDict(env_prefix="MINERLENS_MODEL_", extra="ignore")

    pubkey: str = Field(
        default="", description="Ed25519 public key file (PEM); set: every artifact must carry a valid manifest.sig"
    )


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - cryptography is a dependency of minerlens-core
        msg = "model signatures need the 'cryptography' package (pip install cryptography)"
        raise ConfigurationError(msg) from None
    return serialization


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw 32-byte public key."""
    serialization = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    serialization = _crypto()
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        msg = f"{path}: cannot read the Ed25519 public key (PEM): {exc}: refusing every artifact"
        raise ArtifactTrustError(msg) from None
    if not isinstance(key, Ed25519PublicKey):
        msg = f"{path}: a {type(key).__name__}, not an Ed25519 public key: refusing every artifact"
        raise ArtifactTrustError(msg)
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        msg = f"{path}: cannot read the Ed25519 private key (unencrypted PEM): {exc}"
        raise ConfigurationError(msg) from None
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"{path}: a {type(key).__name__}, not an Ed25519 private key"
        raise ConfigurationError(msg)
    return key


def generate_key(prefix: Path, *, force: bool = False) -> tuple[Path, Path, str]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; return both paths and the key id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _crypto()
    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for p in (private_path, public_path):
        if p.exists() and not force:
            msg = f"{p} exists; refusing to overwrite a key (--force to replace it)"
            raise ConfigurationError(msg)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.unlink(missing_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key()
    public_path.write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path, key_id(public)


def signature_document(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The ``manifest.sig`` content for these manifest bytes."""
    doc = {
        "algorithm": ALGORITHM,
        "key_id": key_id(private_key.public_key()),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "signature": base64.b64encode(private_key.sign(SIGNATURE_CONTEXT + manifest_bytes)).decode(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def verify_signature(directory: Path, manifest_bytes: bytes, public_key: Ed25519PublicKey) -> str:
    """Check ``manifest.sig`` of ``directory`` against the manifest bytes; return the key id.

    Raises :class:`ArtifactSignatureError` (missing, unreadable, other key, bad signature).
    """
    from cryptography.exceptions import InvalidSignature

    path = Path(directory) / SIGNATURE_FILE
    expected = key_id(public_key)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SIGNATURE_BYTES + 1)
    except FileNotFoundError:
        msg = (
            f"{directory}: not signed ({SIGNATURE_FILE} missing) but {PUBKEY_ENV} requires a signature "
            f"by key {expected}: refusing it (sign it: minerlens model sign --key KEY {directory})"
        )
        raise ArtifactSignatureError(msg) from None
    except OSError as exc:
        msg = f"{path}: unreadable: {exc}"
        raise ArtifactSignatureError(msg) from None
    if len(raw) > MAX_SIGNATURE_BYTES:
        msg = f"{path}: larger than {MAX_SIGNATURE_BYTES} bytes, not a minerlens signature file: refusing the artifact"
        raise ArtifactSignatureError(msg)
    try:
        doc = json.loads(raw)
        algorithm, signer = doc["algorithm"], str(doc["key_id"])
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        msg = f"{path}: not a minerlens signature file ({type(exc).__name__}): refusing the artifact"
        raise ArtifactSignatureError(msg) from None
    if algorithm != ALGORITHM:
        msg = f"{path}: signature algorithm {str(algorithm)[:32]!r}, only {ALGORITHM} is accepted: refusing it"
        raise ArtifactSignatureError(msg)
    if signer != expected:
        msg = f"{directory}: signed by key {signer[:32]}, the configured key is {expected}: refusing it"
        raise ArtifactSignatureError(msg)
    try:
        public_key.verify(signature, SIGNATURE_CONTEXT + manifest_bytes)
    except InvalidSignature:
        msg = (
            f"{directory}: the signature by key {expected} does not match {MANIFEST}: "
            "the manifest was changed after signing (or the signature forged): refusing it"
        )
        raise ArtifactSignatureError(msg) from None
    return expected


@dataclass(frozen=True)
class Trust:
    """What a loader requires of an artifact beyond its digest: a signature by ``public_key`` (or nothing)."""

    public_key: Ed25519PublicKey | None = None
    source: str = ""

    @classmethod
    def none(cls) -> Trust:
        return cls()

    @classmethod
    def from_file(cls, path: Path) -> Trust:
        return cls(load_public_key(path), str(path))

    @classmethod
    def from_env(cls) -> Trust:
        """``MINERLENS_MODEL_PUBKEY`` (a path; unset or empty: no signature required)."""
        path = ModelTrustSettings().pubkey.strip()
        return cls.from_file(Path(path)) if path else cls.none()

    @property
    def key_id(self) -> str | None:
        return None if self.public_key is None else key_id(self.public_key)
