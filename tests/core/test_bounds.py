"""Bounded contract types (``schemas.bounds``) and where they are applied: envelope, OCSF findings, explanations.

The refused values are the ones the issue saw reach consumers: pods named ``" "``, ``*``, ``a\\0b``,
namespace ``a/b``; integers of 2**63 and 10**100.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from minerlens_core.schemas.bounds import (
    MAX_JSON_DEPTH,
    MAX_LABELS,
    BoundedJson,
    ContainerIdOrEmpty,
    FiniteFloat,
    Int64,
    K8sLabels,
    K8sName,
    K8sNamespace,
    NodeName,
    NonNegInt64,
    SafeText,
    bounded_labels,
)
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.explanations import Explanation
from minerlens_core.schemas.ocsf import decode_finding
from pydantic import TypeAdapter, ValidationError

from tests.fuzz.seeds import message_seeds


def _ok(t: object, value: object) -> bool:
    try:
        TypeAdapter(t).validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("t", "good", "bad"),
    [
        (Int64, [0, -(2**63), 2**63 - 1], [2**63, -(2**63) - 1, 10**100]),
        (NonNegInt64, [0, 2**63 - 1], [-1, 2**63, 10**100]),
        (FiniteFloat, [0.0, 1e308], [float("nan"), float("inf")]),
        (K8sNamespace, ["shop", "a" * 63, "kube-system"], ["", " ", "*", "a\0b", "a/b", "A", "a.b", "-a", "a" * 64]),
        (
            K8sName,
            ["web-0", "a.b-c", ".".join(["a" * 60] * 4)],
            ["", " ", "*", "a\0b", "b/x", "Web", "a..b", "a" * 254],
        ),
        (NodeName, ["node-1", "Node_1.local", "vm"], ["", "a b", "n1\n", "-n", "x" * 254]),
        (ContainerIdOrEmpty, ["", "3f4e" * 16, "crio-abc:1"], ["-x", "a/b", "a b", "x" * 129]),
        (
            SafeText,
            ["ok", "é ü 中文", "x" * 1024],
            ["a\nb", "a\0b", "\x1b[31m", "a\u202eb", "a\u2028b", "\x85", "x" * 1025],
        ),
        (
            K8sLabels,
            [{}, {"app": "web", "app.kubernetes.io/name": "x_y.z", "e": ""}],
            [{"a": "-x"}, {"/x": "v"}, {"a/b/c": "v"}, {"k": "v" * 64}, {f"k{i}": "" for i in range(MAX_LABELS + 1)}],
        ),
    ],
)
def test_bounded_types(t: object, good: list[Any], bad: list[Any]) -> None:
    assert [v for v in good if not _ok(t, v)] == []
    assert [v for v in bad if _ok(t, v)] == []


def test_bounded_json_limits_depth_integers_and_text() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    assert _ok(BoundedJson, {"a": [1, 2.5, None, True, "x"]})
    for bad in (deep, {"n": 10**100}, {"s": "a\0b"}, {"k\n": 1}, [0] * 5000):
        assert not _ok(BoundedJson, bad), bad


def test_pod_names_the_issue_saw_are_refused_and_empty_stays_legal() -> None:
    assert PodRef(uid="u1").display == "pod:u1"  # only the cgroup known: namespace and name empty
    assert PodRef(uid="u1", namespace="shop", name="web-0").display == "shop/web-0"
    for namespace, name in ((" ", "x"), ("*", "x"), ("a\0b", "x"), ("a/b", "x"), ("a", "b/x"), ("shop", " ")):
        with pytest.raises(ValidationError):
            PodRef(uid="u1", namespace=namespace, name=name)
    with pytest.raises(ValidationError, match="at most 64"):
        PodRef(uid="u1", labels={f"k{i}": "v" for i in range(MAX_LABELS + 1)})
    bad_fields = (
        ("node", "n1\n"),
        ("cluster", ""),
        ("container_id", "../x"),
        ("observed_at", "9999-12-31T23:59:59-23:59"),  # past year 9999 in UTC: consumers' arithmetic overflowed
        ("observed_at", "1969-12-31T23:59:59Z"),
    )
    for field, value in bad_fields:
        with pytest.raises(ValidationError, match=field):
            Envelope.model_validate({"node": "n1", field: value})


def test_bounded_labels_trims_deterministically() -> None:
    labels = {f"k{i:03}": "v" for i in range(MAX_LABELS + 10)} | {"bad key": "v", "ok": "-bad value"}
    kept = bounded_labels(labels)
    assert len(kept) == MAX_LABELS
    assert list(kept) == sorted(kept)
    assert "bad key" not in kept
    assert "ok" not in kept
    assert PodRef(uid="u1", labels=kept).labels == kept


def _finding(**changes: Any) -> bytes:
    doc = message_seeds("alerts")[0]
    doc = json.loads(json.dumps(doc))
    for path, value in changes.items():
        *head, last = path.split("__")
        target = doc
        for key in head:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value
    return json.dumps(doc).encode()


def test_findings_are_bounded() -> None:
    decode_finding(_finding())
    for change in (
        {"message": "line\nforged: x"},
        {"time": 2**63},
        {"resources__0__namespace": "a/b"},
        {"resources__0__uid": "UPPER"},
        {"device__hostname": "h\0"},
        {"unmapped": {"minerlens": {"lost_events": 10**100}}},
        {"finding_info__title": "x" * 2000},
        {"extension_field": {"deep": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}},
    ):
        with pytest.raises(ValidationError):
            decode_finding(_finding(**change))


def test_explanations_are_bounded() -> None:
    doc = message_seeds("explanations")[0]
    Explanation.model_validate(doc)
    for change in (
        {"summary": "a\0b"},
        {"window_id": "x\n"},
        {"params": {"unit": [1]}},
        {"params": {f"p{i}": i for i in range(100)}},
        {"params": {"k\x1b": 1}},
        {"contributions": [doc["contributions"][0]] * 5000},
    ):
        with pytest.raises(ValidationError):
            Explanation.model_validate({**doc, **change})
