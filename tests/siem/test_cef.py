"""CEF escaping: a CEF parser written here (from the ArcSight rules) recovers every original value."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from minerlens_siem.cef import (
    CUSTOM_LABELS,
    MAX_LENGTH,
    escape_extension_value,
    escape_header,
    format_cef,
    format_extension,
    to_cef,
)

from tests.siem.findings import ALERT_ID, CONTAINER_ID, POD_UID, T0_MS, make_finding

_KEY_CHARS = re.compile(r"[A-Za-z0-9_]")
_EXT_UNESCAPE = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}


def split_header(line: str) -> tuple[list[str], str]:
    """CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension: split on unescaped pipes."""
    assert line.startswith("CEF:")
    fields: list[str] = []
    current: list[str] = []
    i = 4
    while len(fields) < 7:
        c = line[i]
        if c == "\\":
            nxt = line[i + 1]
            assert nxt in "\\|", f"invalid header escape \\{nxt}"
            current.append(nxt)
            i += 2
            continue
        if c == "|":
            fields.append("".join(current))
            current = []
        else:
            assert c not in "\r\n", "newline in the CEF header"
            current.append(c)
        i += 1
    return fields, line[i:]


def unescape_value(raw: str) -> str:
    out = []
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            nxt = raw[i + 1]  # a lone trailing backslash would be an encoder bug: IndexError
            assert nxt in _EXT_UNESCAPE, f"invalid extension escape \\{nxt}"
            out.append(_EXT_UNESCAPE[nxt])
            i += 2
        else:
            assert raw[i] != "=", "unescaped '=' inside a value"
            assert raw[i] not in "\r\n", "raw newline inside a value"
            out.append(raw[i])
            i += 1
    return "".join(out)


def parse_extension(ext: str) -> list[tuple[str, str]]:
    """key=value pairs: a key is the identifier before an unescaped '=', preceded by a space (or the start)."""
    equals = []
    i = 0
    while i < len(ext):
        if ext[i] == "\\":
            i += 2
            continue
        if ext[i] == "=":
            equals.append(i)
        i += 1
    keys = []
    for eq in equals:
        start = eq
        while start > 0 and _KEY_CHARS.match(ext[start - 1]):
            start -= 1
        assert start == 0 or ext[start - 1] == " ", f"key not preceded by a space at {start}"
        assert start < eq, "empty key"
        keys.append((start, eq))
    pairs = []
    for n, (start, eq) in enumerate(keys):
        end = keys[n + 1][0] - 1 if n + 1 < len(keys) else len(ext)
        pairs.append((ext[start:eq], unescape_value(ext[eq + 1 : end])))
    return pairs


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    header, ext = split_header(line)
    return header, dict(parse_extension(ext))


def test_escaping_examples() -> None:
    assert escape_header(r"a|b\c") == r"a\|b\\c"
    assert escape_header("x=y") == "x=y"  # '=' needs no escape in the header
    assert escape_header("two\nlines\r") == "two lines "
    assert escape_extension_value(r"a=b\c|d") == r"a\=b\\c|d"  # '|' needs no escape in the extension
    assert escape_extension_value("l1\nl2\r\n") == r"l1\nl2\r\n"


header_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)))
value_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True).filter(lambda k: k not in MAX_LENGTH)
# what the message contract lets into a finding (schemas.bounds): no control characters, Kubernetes names
contract_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"),
        blacklist_characters="\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    )
)
k8s_name = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(vendor=header_text, product=header_text, version=header_text, sig=header_text, name=header_text)
def test_header_round_trip(vendor: str, product: str, version: str, sig: str, name: str) -> None:
    line = format_cef(
        vendor=vendor, product=product, device_version=version, signature_id=sig, name=name, severity=7, extension=[]
    )
    header, ext = split_header(line)
    assert header == ["0", vendor, product, version, sig, name, "7"]
    assert ext == ""


@settings(max_examples=500, deadline=None)
@given(pairs=st.dictionaries(keys, value_text, min_size=1, max_size=8))
def test_extension_round_trip(pairs: dict[str, str]) -> None:
    ext = format_extension(list(pairs.items()))
    assert "\n" not in ext
    assert "\r" not in ext
    assert dict(parse_extension(ext)) == pairs


@settings(max_examples=150, deadline=None)
@given(
    namespace=k8s_name,
    pod=k8s_name,
    message=contract_text.filter(lambda m: m.strip()),
    title=contract_text.filter(lambda t: t.strip()),
    reason=contract_text,
    label_value=contract_text,
)
def test_full_finding_round_trip(
    namespace: str, pod: str, message: str, title: str, reason: str, label_value: str
) -> None:
    reasons = [{"feature": "rate.sched_yield", "value": 1.0, "baseline": 0.5, "contribution": 0.3, "text": reason}]
    finding = make_finding(
        namespace=namespace or "ns",
        pod=pod or "p",
        message=message,
        title=title,
        reason_list=reasons,
        labels=[f"k={label_value}"],
    )
    header, ext = parse_cef(to_cef(finding))
    assert header[5] == title
    assert ext["msg"] == message[: MAX_LENGTH["msg"]]
    assert ext["cs1"] == (namespace or "ns")[:4000]
    assert ext["cs2"] == (pod or "p")[:4000]
    expected_reason = reason or "rate.sched_yield=1 (baseline 0.5)"
    assert ext["cs6"] == expected_reason[:4000]


def test_cef_line_of_a_finding() -> None:
    line = to_cef(make_finding(severity_id=4, title="Miner | in pod\\x"))
    header, ext = parse_cef(line)
    assert header == ["0", "minerlens", "minerlens", "0.1.0", "200401", "Miner | in pod\\x", "7"]
    assert line.startswith(r"CEF:0|minerlens|minerlens|0.1.0|200401|Miner \| in pod\\x|7|rt=")
    assert ext["rt"] == str(T0_MS)
    assert ext["act"] == "create"
    assert ext["dvchost"] == "node-a"
    assert ext["externalId"] == ALERT_ID
    assert ext["cs3"] == POD_UID
    assert ext["cs4"] == CONTAINER_ID
    assert ext["cs5"] == "prod-eu"
    assert ext["cn1"] == "4"
    assert ext["cn2"] == "5"
    assert ext["cn3"] == "97"
    assert float(ext["cfp1"]) == pytest.approx(0.973)
    assert float(ext["cfp2"]) == pytest.approx(0.5)
    assert ext["flexString1"] == "xgb-syscalls@2026.01.3"
    assert ext["request"] == "https://minerlens.example/v1/pods/shop/checkout-7d9f8b6c5-x2k4q/explanation"
    for key, label in CUSTOM_LABELS.items():
        assert ext[f"{key}Label"] == label
    assert ext["cs6"].startswith("sched_yield at 1844/s vs 12/s for benign pods; futex is 62% of syscalls")


@pytest.mark.parametrize(("severity_id", "cef"), [(0, 0), (1, 1), (2, 3), (3, 5), (4, 7), (5, 9), (6, 10)])
def test_severity_scale(severity_id: int, cef: int) -> None:
    header, _ = parse_cef(to_cef(make_finding(severity_id=severity_id)))
    assert header[6] == str(cef)


def test_close_and_long_values() -> None:
    long_msg = "=" * 5000
    header, ext = parse_cef(to_cef(make_finding(activity_id=3, message=long_msg)))
    assert header[4] == "200403"
    assert ext["act"] == "close"
    assert ext["msg"] == "=" * 1023  # cut to the CEF length before escaping: no escape is split


def test_invalid_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid CEF extension key"):
        format_extension([("bad key", "x")])
    with pytest.raises(ValueError, match="invalid CEF extension key"):
        format_extension([("a=b", "x")])
