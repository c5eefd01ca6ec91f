"""File names of a model artifact directory (see ``minerlens_core.models.manifest`` for the layout)."""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
DIGEST_FILE = "manifest.sha256"
"""sha256 of ``manifest.json``'s bytes, as ``sha256sum`` writes it: ``<hex>  manifest.json``."""
SIGNATURE_FILE = "manifest.sig"
"""Optional Ed25519 signature of ``manifest.json`` (``minerlens model sign``)."""
SEAL_FILES = frozenset({MANIFEST, DIGEST_FILE, SIGNATURE_FILE})
"""The files that describe the artifact; every other file must be listed in the manifest."""
ONNX_FILE = "model.onnx"
NATIVE_FILE = "model.joblib"
XGB_FILE = "model.xgb.json"
TORCH_FILE = "model.pt"
BACKGROUND_FILE = "background.npz"
MAX_MANIFEST_BYTES = 4 << 20
"""A manifest is a few kB; a larger file is refused unread."""

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_plain_file_name(name: str) -> bool:
    """A name the manifest may list: no directory part, no leading dot, not one of ``SEAL_FILES``."""
    return _FILE_NAME.fullmatch(name) is not None and name not in SEAL_FILES
