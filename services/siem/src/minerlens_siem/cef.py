"""OCSF Detection Finding -> ArcSight Common Event Format (CEF:0) line.

``CEF:0|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension``

Escaping (ArcSight "Implementing ArcSight CEF"):

* header fields: ``\\`` -> ``\\\\`` and ``|`` -> ``\\|``. Newlines are not allowed in the header and
  become spaces (the only lossy step).
* extension values: ``\\`` -> ``\\\\``, ``=`` -> ``\\=``, newline -> ``\\n``, carriage return -> ``\\r``.
  ``|`` needs no escaping in the extension.
* extension keys are fixed ASCII identifiers; anything else is refused.

Values longer than the CEF dictionary allows for their key are cut before escaping (an escape
sequence is never split).
"""

from __future__ import annotations

import re

from minerlens_core.schemas.ocsf import DetectionFinding

from minerlens_siem.alert_view import AlertView, alert_view

CEF_VERSION = 0
DEVICE_VENDOR = "minerlens"
DEVICE_PRODUCT = "minerlens"
CATEGORY = "Resource Hijacking"

_HEADER_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " "})
_EXTENSION_ESCAPES = str.maketrans({"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"})
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

SEVERITY_TO_CEF = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 9, 6: 10}
"""OCSF severity_id (0 Unknown .. 6 Fatal) -> CEF 0-10 (0-3 Low, 4-6 Medium, 7-8 High, 9-10 Very-High)."""

MAX_LENGTH = {
    "act": 63,
    "cat": 1023,
    "dvchost": 100,
    "externalId": 40,
    "msg": 1023,
    "request": 1023,
    "flexString1": 1023,
    "flexString2": 1023,
    **{f"cs{i}": 4000 for i in range(1, 7)},
}
"""Maximum value lengths (characters) of the CEF dictionary for the string keys minerlens sets."""

CUSTOM_LABELS = {
    "cs1": "k8sNamespace",
    "cs2": "k8sPod",
    "cs3": "k8sPodUid",
    "cs4": "containerId",
    "cs5": "k8sCluster",
    "cs6": "reasons",
    "cn1": "windowsOver",
    "cn2": "windowsSeen",
    "cn3": "confidenceScore",
    "cfp1": "score",
    "cfp2": "threshold",
    "cfp3": "riskScore",
    "flexString1": "model",
}
"""Meaning of the custom keys; each is sent with its ``<key>Label`` companion."""
OPTIONAL_LABELS = {"flexString2": "containerImage"}
"""Custom keys sent only when the finding has them (the container image: ``name:tag``), with their label."""


def escape_header(value: str) -> str:
    return value.translate(_HEADER_ESCAPES)


def escape_extension_value(value: str) -> str:
    return value.translate(_EXTENSION_ESCAPES)


def format_extension(pairs: list[tuple[str, str]]) -> str:
    """``key=value`` pairs separated by single spaces, values escaped and cut to their CEF length."""
    parts = []
    for key, value in pairs:
        if not _KEY.match(key):
            msg = f"invalid CEF extension key {key!r}"
            raise ValueError(msg)
        limit = MAX_LENGTH.get(key)
        text = value if limit is None else value[:limit]
        parts.append(f"{key}={escape_extension_value(text)}")
    return " ".join(parts)


def format_cef(
    *,
    device_version: str,
    signature_id: str,
    name: str,
    severity: int,
    extension: list[tuple[str, str]],
    vendor: str = DEVICE_VENDOR,
    product: str = DEVICE_PRODUCT,
) -> str:
    if not 0 <= severity <= 10:
        msg = f"CEF severity must be 0-10, got {severity}"
        raise ValueError(msg)
    header = [vendor, product, device_version, signature_id, name]
    return (
        f"CEF:{CEF_VERSION}|"
        + "|".join(escape_header(h) for h in header)
        + f"|{severity}|"
        + (format_extension(extension))
    )


def _float(value: float) -> str:
    return repr(float(value))


def extension_pairs(view: AlertView) -> list[tuple[str, str]]:
    """The extension of one alert, in a fixed order (standard keys, then labelled custom keys)."""
    pairs: list[tuple[str, str]] = [("rt", str(view.time_ms))]
    if view.first_seen_ms is not None:
        pairs.append(("start", str(view.first_seen_ms)))
    if view.last_seen_ms is not None:
        pairs.append(("end", str(view.last_seen_ms)))
    pairs += [("act", view.activity), ("msg", view.message)]
    if view.node:
        pairs.append(("dvchost", view.node))
    pairs += [("externalId", view.alert_id), ("cat", CATEGORY)]
    if view.explain_url:
        pairs.append(("request", view.explain_url))
    custom: dict[str, str | None] = {
        "cs1": view.namespace,
        "cs2": view.pod,
        "cs3": view.pod_uid,
        "cs4": view.container_id,
        "cs5": view.cluster,
        "cs6": view.reasons_summary() or None,
        "cn1": str(view.windows_over) if view.windows_over is not None else None,
        "cn2": str(view.windows_seen) if view.windows_seen is not None else None,
        "cn3": str(view.confidence_score) if view.confidence_score is not None else None,
        "cfp1": _float(view.score) if view.score is not None else None,
        "cfp2": _float(view.threshold) if view.threshold is not None else None,
        "cfp3": _float(view.risk_score) if view.risk_score is not None else None,
        "flexString1": f"{view.model_name}@{view.model_version}",
        "flexString2": view.image.reference if view.image else None,
    }
    labels = CUSTOM_LABELS | OPTIONAL_LABELS
    for key, value in custom.items():
        if value is not None:
            pairs += [(f"{key}Label", labels[key]), (key, value)]
    return pairs


def view_to_cef(view: AlertView) -> str:
    return format_cef(
        device_version=view.product_version,
        signature_id=str(view.type_uid),
        name=view.title,
        severity=SEVERITY_TO_CEF.get(view.severity_id, 0),
        extension=extension_pairs(view),
    )


def to_cef(finding: DetectionFinding) -> str:
    """One CEF line (no trailing newline) for ``finding``."""
    return view_to_cef(alert_view(finding))
