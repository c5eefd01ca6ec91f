"""``minerlens responder check-policy --json``: the policy's rules, in order, as one JSON array on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from minerlens_responder.cli import RULE_COLUMNS, register
from minerlens_responder.policy import load_policy
from typer.testing import CliRunner

from tests.responder.test_cli_http import POLICY

app = typer.Typer()
register(app)
runner = CliRunner()


def test_check_policy_json_lists_the_rules_in_order() -> None:
    res = runner.invoke(app, ["responder", "check-policy", str(POLICY), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    policy = load_policy(POLICY)
    assert [r["rule"] for r in rows] == [r.name for r in policy.rules]
    assert all(set(r) == {c.replace(" ", "_") for c in RULE_COLUMNS} for r in rows)
    first, rule = rows[0], policy.rules[0]
    assert first["actions"] == [a.value for a in rule.ordered_actions()]
    assert first["min_score"] == rule.match.min_score
    assert first["namespaces"] == list(rule.match.namespaces)
    assert "valid" in res.stderr, "the verdict on the file stays on stderr"


def test_check_policy_json_of_an_invalid_policy_prints_no_json(tmp_path: Path) -> None:
    broken = tmp_path / "p.yaml"
    broken.write_text("rules: [{name: x, actions: [nuke]}]")
    res = runner.invoke(app, ["responder", "check-policy", str(broken), "--json"])
    assert res.exit_code == 2
    assert res.stdout == ""
