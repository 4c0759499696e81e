"""The monitoring kit (``deploy/observability/``): rules and their tests, scrape config, dashboard.

``promtool`` comes from Debian's ``prometheus`` package (deploy/system-packages.txt).
Which metrics the rules and the dashboard name is also used by
tests/integration/test_observability_metrics.py, which checks that a running
service exports every one of them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "deploy" / "observability"
ALERTS = KIT / "alerts.yml"
RULE_TESTS = KIT / "tests" / "alerts_test.yml"
DASHBOARD = KIT / "grafana-dashboard.json"
SCRAPE = KIT / "prometheus.yml"
REQUIRED_ALERTS = {
    "AuthServiceDown",
    "AuthServiceHigh5xxRatio",
    "AuthServiceForwardAuthSlow",
    "AuthServiceJWKSRefreshFailing",
    "AuthServiceIdPUnreachable",
    "AuthServiceAuditSpoolGrowing",
    "AuthServiceMFALockoutSpike",
    "AuthServiceRevocationsNotSynced",
}
_METRIC = re.compile(r"\b((?:auth|process|python)_[a-z0-9_]+)\b")
_SUFFIXES = ("_bucket", "_count", "_sum")


def _promtool(*args: str, cwd: Path = KIT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe is not None, "promtool missing: install Debian's prometheus (make install)"
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def metric_names() -> set[str]:
    """Every sample name of ours the alert rules and the dashboard query, as exported."""
    names: set[str] = set()
    for expr in [r["expr"] for r in _rules()] + _dashboard_exprs():
        names |= set(_METRIC.findall(expr))
    return names


def family_name(sample: str) -> str:
    """The metric family a queried sample name belongs to (histogram series → histogram)."""
    for suffix in _SUFFIXES:
        if sample.endswith(suffix):
            return sample.removesuffix(suffix)
    return sample


def test_promtool_checks_the_rules() -> None:
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests mean something: with one threshold loosened, they fail."""
    (tmp_path / "tests").mkdir()
    loosened = ALERTS.read_text().replace("> 0.05", "> 0.5")
    assert loosened != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(loosened)
    (tmp_path / "tests" / "alerts_test.yml").write_text(RULE_TESTS.read_text())
    result = _promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "AuthServiceHigh5xxRatio" in result.stdout + result.stderr


def test_every_required_alert_exists_and_is_unit_tested() -> None:
    names = {rule["alert"] for rule in _rules()}
    assert names >= REQUIRED_ALERTS
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested_firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert tested_firing >= names, f"alerts never shown firing: {names - tested_firing}"
    for rule in _rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_the_scrape_config_is_valid_prometheus(tmp_path: Path) -> None:
    """``promtool check config`` on the scrape config, rules included.

    Debian's Prometheus is built without Kubernetes service discovery, so the
    ``kubernetes_sd_configs`` block is swapped for a static target here; the
    relabelling, paths and rule files are checked as written.
    """
    config = yaml.safe_load(SCRAPE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    k8s_job = jobs["auth-service"]
    assert k8s_job["kubernetes_sd_configs"] == [{"role": "pod"}]
    del k8s_job["kubernetes_sd_configs"]
    k8s_job["static_configs"] = [{"targets": ["auth-service:8000"]}]
    # The pod labels the job keeps are the Deployment's (deploy/k8s).
    keep = k8s_job["relabel_configs"][0]
    assert keep["regex"] == "auth-service;server"
    deployment = yaml.safe_load((ROOT / "deploy/k8s/base/deployment.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (labels["app.kubernetes.io/name"], labels["app.kubernetes.io/component"]) == (
        "auth-service",
        "server",
    )
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    result = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_the_dashboard_is_grafana_json_with_valid_queries(tmp_path: Path) -> None:
    """Every dashboard query parses as PromQL (promtool checks it as a recording rule)."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "auth-service"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_and_dashboard_name_the_metrics_the_alerts_need() -> None:
    names = metric_names()
    assert {
        "auth_decision_duration_seconds_bucket",
        "auth_http_requests_total",
        "auth_jwks_fetches_total",
        "auth_idp_unreachable_workers",
        "auth_audit_spool_bytes",
        "auth_mfa_lockouts_total",
        "auth_revocations_unsynced_workers",
        "process_cpu_seconds_total",
    } <= names
    assert family_name("auth_decision_duration_seconds_bucket") == "auth_decision_duration_seconds"
