"""Route rewriting changes weights and KULTA's header rules, nothing else."""

from __future__ import annotations

import copy

import pytest

from kulta.core.routes import HeaderRule, RouteRewriteError, rewrite_rules, route_weights

BASE = [
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "timeouts": {"request": "10s"},
        "backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0},
        ],
    },
    {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [{"name": "admin", "port": 80}]},
]


def rewrite(rules, stable=75, canary=25, headers=()):
    return rewrite_rules(
        rules,
        route="web",
        stable_service="web-stable",
        canary_service="web-canary",
        stable_weight=stable,
        canary_weight=canary,
        header_rules=headers,
    )


@pytest.mark.parametrize(("stable", "canary"), [(100, 0), (75, 25), (50, 50), (0, 100)])
def test_weights_set_on_rule_with_both_backends(stable, canary):
    out = rewrite(BASE, stable, canary)
    assert route_weights(out, "web-stable", "web-canary") == (stable, canary)


def test_everything_else_is_untouched():
    before = copy.deepcopy(BASE)
    out = rewrite(BASE)
    assert before == BASE  # input not mutated
    assert out[1] == BASE[1]
    assert out[0]["timeouts"] == {"request": "10s"}
    assert out[0]["matches"] == BASE[0]["matches"]
    assert [r["port"] for r in out[0]["backendRefs"]] == [80, 80]


def test_every_rule_with_both_backends_gets_weights():
    rules = [*BASE, copy.deepcopy(BASE[0])]
    out = rewrite(rules, 40, 60)
    assert [r["backendRefs"][1].get("weight") for r in (out[0], out[2])] == [60, 60]


def test_header_rule_added_first_and_replaced_not_duplicated():
    hr = HeaderRule(name="beta", matches=(("x-beta", "yes", "exact"), ("x-user", "qa-", "prefix")))
    out = rewrite(BASE, headers=[hr])
    assert out[0]["name"] == "kulta-beta"
    assert out[0]["backendRefs"] == [{"name": "web-canary", "port": 80, "weight": 100}]
    headers = out[0]["matches"][0]["headers"]
    assert headers == [
        {"name": "x-beta", "type": "Exact", "value": "yes"},
        {"name": "x-user", "type": "RegularExpression", "value": "^qa-.*"},
    ]
    again = rewrite(out, headers=[hr])
    assert [r.get("name") for r in again].count("kulta-beta") == 1
    removed = rewrite(out, headers=[])
    assert all(not str(r.get("name", "")).startswith("kulta-") for r in removed)
    assert removed[1:] == out[2:]


def test_route_without_both_backends_is_an_actionable_error():
    with pytest.raises(RouteRewriteError, match="web-stable"):
        rewrite([BASE[1]])


def test_bad_weights_refused():
    with pytest.raises(RouteRewriteError):
        rewrite(BASE, 80, 30)
