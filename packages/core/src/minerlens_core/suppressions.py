"""Suppression rules: which alerts an operator has silenced, and the one matcher everyone uses.

A rule names what it silences, Falco-exception style: every condition it sets must hold (AND), and a rule
sets at least one of

* ``namespace``: the pod's namespace (exact);
* ``selector``: a pod label selector, ``key=value``, ``key!=value`` or ``key`` (exists), comma-separated, all
  must hold (Kubernetes' equality-based selector syntax);
* ``image``: the container image, as people write it (``name``, ``name:tag``, ``name@digest``); exact, or a
  prefix when it ends in ``*`` (``ghcr.io/acme/batch-*``). ``name`` alone matches any tag of it;
* ``process``: the process name (``comm``) or its executable path (``exe``); exact, or a prefix with ``*``.
  Never alone: a miner can be named anything, so a process condition comes with a namespace, a selector
  or an image.

with a ``reason``, an ``owner`` and an ``expires_at`` (a rule always expires: silences are not forgotten
forever). The scorer asks ``RuleSet.match`` before raising (or keeping open) an alert; the explainer stores
the rules and shows which alerts a rule covers. Pure: no I/O, no clock of its own (``now`` is passed).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from minerlens_core.schemas.bounds import K8sNamespaceOrEmpty, NoControl, check_label_key, check_label_value
from minerlens_core.schemas.envelope import ContainerImage, PodRef, image_reference
from minerlens_core.schemas.windows import ProcessRef, Verdict

RULE_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_RULES = 1000
"""rules a rule set holds (the scorer checks every one per alert decision)"""

Op = Literal["=", "!=", "exists"]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    value: str = ""

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


@functools.lru_cache(maxsize=4096)
def parse_selector(text: str) -> tuple[Requirement, ...]:
    """``app=batch,tier!=web,owner`` -> requirements; ``ValueError`` naming the bad term."""
    out: list[Requirement] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            msg = f"label selector {text[:80]!r}: empty term"
            raise ValueError(msg)
        key, op, value = _split_term(term)
        try:
            check_label_key(key)
            if op != "exists":
                check_label_value(value)
        except ValueError as exc:
            msg = f"label selector term {term[:80]!r}: {exc}"
            raise ValueError(msg) from None
        out.append(Requirement(key, op, value))
    return tuple(out)


def _split_term(term: str) -> tuple[str, Op, str]:
    if "!=" in term:
        key, _, value = term.partition("!=")
        return key.strip(), "!=", value.strip()
    if "==" in term:
        key, _, value = term.partition("==")
        return key.strip(), "=", value.strip()
    if "=" in term:
        key, _, value = term.partition("=")
        return key.strip(), "=", value.strip()
    return term, "exists", ""


def _check_selector(text: str) -> str:
    if text:
        parse_selector(text)
    return text


def _check_pattern(text: str) -> str:
    if not text:
        return text
    if "*" in text[:-1]:
        msg = f"{text[:80]!r}: '*' is allowed only at the end (a prefix)"
        raise ValueError(msg)
    if text == "*":
        msg = "'*' alone would match everything: name something"
        raise ValueError(msg)
    return text


Selector = Annotated[str, Field(max_length=1024), NoControl, AfterValidator(_check_selector)]
Pattern = Annotated[str, Field(max_length=512, pattern=r"^[^\s]*$"), NoControl, AfterValidator(_check_pattern)]
Text = Annotated[str, Field(min_length=1, max_length=500), NoControl]
Who = Annotated[str, Field(min_length=1, max_length=128), NoControl]


class RuleSpec(BaseModel):
    """What an operator asks for: the conditions, why, who owns it and until when."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    namespace: K8sNamespaceOrEmpty = ""
    selector: Selector = ""
    image: Pattern = ""
    process: Pattern = ""
    reason: Text
    owner: Who
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _names_something(self) -> RuleSpec:
        if not (self.namespace or self.selector or self.image or self.process):
            msg = "a suppression needs at least one of namespace, selector, image, process (it would silence all)"
            raise ValueError(msg)
        if self.process and not (self.namespace or self.selector or self.image):
            msg = (
                "a process name or path alone is refused: whoever runs a miner chooses them (a miner named ffmpeg); "
                "combine it with a namespace, a label selector or an image"
            )
            raise ValueError(msg)
        return self

    def describe(self) -> str:
        parts = [f"namespace={self.namespace}"] if self.namespace else []
        parts += [f"labels({self.selector})"] if self.selector else []
        parts += [f"image={self.image}"] if self.image else []
        parts += [f"process={self.process}"] if self.process else []
        return " and ".join(parts)


class SuppressionRule(RuleSpec):
    """A stored rule: the spec plus its id and who created it when."""

    kind: Literal["suppression"] = "suppression"
    id: Annotated[str, Field(pattern=RULE_ID)]
    created_at: AwareDatetime
    created_by: Who

    @model_validator(mode="after")
    def _expires_later(self) -> SuppressionRule:
        if self.expires_at <= self.created_at:
            msg = "expires_at must be after created_at"
            raise ValueError(msg)
        return self

    def active(self, now: datetime) -> bool:
        """Not yet expired (its start is not checked: the clocks of the explainer and scorer may differ)."""
        return now < self.expires_at


@dataclass(frozen=True)
class Subject:
    """What a rule is matched against: the pod, the container image and the process of the evidence."""

    namespace: str = ""
    pod: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    image_name: str = ""
    image_tag: str = ""
    image_digest: str = ""
    comm: str = ""
    exe: str = ""

    @classmethod
    def of(cls, pod: PodRef | None, image: ContainerImage | None, process: ProcessRef | None) -> Subject:
        return cls(
            namespace=pod.namespace if pod else "",
            pod=pod.name if pod else "",
            labels=dict(pod.labels) if pod else {},
            image_name=image.name if image else "",
            image_tag=image.tag if image else "",
            image_digest=image.digest if image else "",
            comm=process.comm if process else "",
            exe=process.exe if process else "",
        )

    @classmethod
    def of_verdict(cls, v: Verdict) -> Subject:
        return cls.of(v.envelope.pod, v.envelope.container_image, v.process)

    @property
    def image(self) -> str:
        return image_reference(self.image_name, self.image_tag, self.image_digest) if self.image_name else ""


def _like(pattern: str, value: str) -> bool:
    if not value:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _image_matches(pattern: str, s: Subject) -> bool:
    if not s.image_name:
        return False
    candidates = {s.image_name, s.image}
    if s.image_tag:
        candidates.add(f"{s.image_name}:{s.image_tag}")
    if s.image_digest:
        candidates.add(f"{s.image_name}@{s.image_digest}")
    return any(_like(pattern, c) for c in candidates)


def matches(rule: RuleSpec, subject: Subject) -> bool:
    """Every condition ``rule`` sets holds for ``subject`` (activity/expiry is ``RuleSet``'s business)."""
    if rule.namespace and rule.namespace != subject.namespace:
        return False
    if rule.selector and not all(r.holds(subject.labels) for r in parse_selector(rule.selector)):
        return False
    if rule.image and not _image_matches(rule.image, subject):
        return False
    return not (rule.process and not (_like(rule.process, subject.comm) or _like(rule.process, subject.exe)))


class RuleSet:
    """The rules in force, by id; ``match`` returns the first active rule (by id) covering a subject."""

    def __init__(self, rules: Iterable[SuppressionRule] = ()) -> None:
        self._rules: dict[str, SuppressionRule] = {}
        self._ordered: list[SuppressionRule] = []
        for r in rules:
            self.put(r)

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def rules(self) -> list[SuppressionRule]:
        return list(self._ordered)

    def _changed(self) -> None:
        self._ordered = [self._rules[k] for k in sorted(self._rules)]

    def put(self, rule: SuppressionRule) -> None:
        if rule.id not in self._rules and len(self._rules) >= MAX_RULES:
            msg = f"at most {MAX_RULES} suppression rules"
            raise ValueError(msg)
        self._rules[rule.id] = rule
        self._changed()

    def remove(self, rule_id: str) -> SuppressionRule | None:
        gone = self._rules.pop(rule_id, None)
        self._changed()
        return gone

    def match(self, subject: Subject, now: datetime | None = None) -> SuppressionRule | None:
        t = now or datetime.now(UTC)
        for rule in self._ordered:
            if rule.active(t) and matches(rule, subject):
                return rule
        return None


_CLEAN = re.compile(r"[^a-z0-9-]+")


def rule_id_hint(spec: RuleSpec) -> str:
    """A readable id stem from a spec (``ns-batch``), to which callers append something unique."""
    stem = _CLEAN.sub("-", (spec.namespace or spec.process or spec.image or spec.selector).lower()).strip("-")
    return (stem or "rule")[:40]
