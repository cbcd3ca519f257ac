#!/usr/bin/env python3
"""promtool checks of the files in monitoring/: the alert rules, their unit
tests, and every PromQL expression of the Grafana dashboard.

Usage: promtool_test.py PROMTOOL MONITORING_DIR
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

PROMTOOL = None
MONITORING = None

# Values for the dashboard's variables, so that each expression is plain
# PromQL.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
    "$pool": ".*",
}

LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def promtool(*args, cwd=None):
    """Runs promtool; returns (exit code, output)."""
    run = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120, check=False)
    return run.returncode, run.stdout + run.stderr


def rules_path():
    return os.path.join(MONITORING, "alerts", "remex.rules.yml")


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def alert_rules():
    """Alert name -> rule, from remex.rules.yml."""
    return {rule["alert"]: rule
            for group in load_yaml(rules_path())["groups"]
            for rule in group["rules"] if "alert" in rule}


def with_annotations(tests):
    """The unit tests with each expected alert's annotations filled in from
    its rule, rendering the {{ $labels.x }} templates with its labels."""
    rules = alert_rules()
    tests = copy.deepcopy(tests)
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            rule = rules[case["alertname"]]
            for alert in case.get("exp_alerts") or []:
                if "exp_annotations" in alert:
                    continue
                labels = alert.get("exp_labels", {})
                alert["exp_annotations"] = {
                    name: LABEL_TEMPLATE.sub(
                        lambda m, labels=labels: str(labels.get(m.group(1), "")),
                        text)
                    for name, text in rule.get("annotations", {}).items()}
    return tests


def dashboard():
    path = os.path.join(MONITORING, "dashboards", "remex.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dashboard_panels(panels):
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_expressions():
    """(panel title, refId, expr with the variables replaced)."""
    for panel in dashboard_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(variable, value)
            yield panel["title"], target["refId"], expr


class AlertRulesTest(unittest.TestCase):

    def test_rules_pass_promtool_check_rules(self):
        code, output = promtool("check", "rules", rules_path())
        self.assertEqual(code, 0, output)
        self.assertIn("SUCCESS", output)

    def test_every_alert_has_a_runbook_summary_and_severity(self):
        for name, rule in alert_rules().items():
            with self.subTest(alert=name):
                annotations = rule.get("annotations", {})
                self.assertGreater(len(annotations.get("runbook", "")), 80)
                self.assertTrue(annotations.get("summary"))
                self.assertIn(rule.get("labels", {}).get("severity"),
                              ("critical", "warning", "info"))

    def test_every_alert_has_a_unit_test(self):
        tests = load_yaml(os.path.join(MONITORING, "alerts", "tests.yml"))
        tested = {case["alertname"] for test in tests["tests"]
                  for case in test.get("alert_rule_test", [])
                  if case.get("exp_alerts")}
        self.assertEqual(tested, set(alert_rules()))

    def run_unit_tests(self, tests):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(rules_path(), tmp)
            with open(os.path.join(tmp, "tests.yml"), "w",
                      encoding="utf-8") as f:
                yaml.safe_dump(tests, f, sort_keys=False)
            return promtool("test", "rules", "tests.yml", cwd=tmp)

    def test_rules_pass_their_unit_tests(self):
        tests = load_yaml(os.path.join(MONITORING, "alerts", "tests.yml"))
        code, output = self.run_unit_tests(with_annotations(tests))
        self.assertEqual(code, 0, output)
        self.assertIn("SUCCESS", output)

    def test_unit_tests_fail_when_an_expected_alert_is_wrong(self):
        tests = load_yaml(os.path.join(MONITORING, "alerts", "tests.yml"))
        for test in tests["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    alert["exp_labels"]["severity"] = "none"
        code, output = self.run_unit_tests(with_annotations(tests))
        self.assertNotEqual(code, 0, output)


class DashboardTest(unittest.TestCase):

    def test_has_a_stable_uid_and_a_datasource_variable(self):
        board = dashboard()
        self.assertEqual(board["uid"], "remex-overview")
        variables = {v["name"]: v for v in board["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for panel in dashboard_panels(board["panels"]):
            if panel.get("type") == "row":
                continue
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                for target in panel["targets"]:
                    self.assertEqual(target["datasource"]["uid"],
                                     "${datasource}")

    def test_shows_what_operators_watch(self):
        exprs = " ".join(e for _, _, e in dashboard_expressions())
        for metric in ("remex_tasks_completed_total", "remex_tasks_rejected_total",
                       "remex_tasks_submitted_total", "remex_pool_queue_depth",
                       "remex_pool_running", "remex_task_queue_seconds_bucket",
                       "remex_task_run_seconds_bucket", "remex_pool_workers",
                       "remex_worker_restarts_total", "remex_grpc_requests_total",
                       "remex_grpc_request_seconds_bucket",
                       "remex_store_commit_seconds_bucket",
                       "remex_store_commit_batch_tasks_bucket",
                       "remex_store_claim_lag_seconds_bucket",
                       "remex_store_errors_total",
                       "remex_store_reconnects_total",
                       "remex_store_requeued_tasks_total",
                       "remex_store_can_commit",
                       "remex_store_replicas_live",
                       "remex_store_replicas_lost_total",
                       "remex_store_lost_replica_tasks_total",
                       "remex_store_replica_silence_seconds_bucket",
                       "remex_store_replica_lease_seconds",
                       "remex_store_heartbeat_interval_seconds",
                       "process_resident_memory_bytes"):
            self.assertIn(metric, exprs)
        for quantile in ("histogram_quantile(0.5,", "histogram_quantile(0.99,"):
            self.assertIn(quantile, exprs)

    def test_panel_ids_are_unique(self):
        ids = [p["id"] for p in dashboard_panels(dashboard()["panels"])]
        self.assertEqual(len(ids), len(set(ids)))

    def test_panels_fit_the_grid_without_overlapping(self):
        taken = {}
        for panel in dashboard_panels(dashboard()["panels"]):
            grid = panel["gridPos"]
            with self.subTest(panel=panel["title"]):
                self.assertGreaterEqual(grid["x"], 0)
                self.assertLessEqual(grid["x"] + grid["w"], 24)
                for x in range(grid["x"], grid["x"] + grid["w"]):
                    for y in range(grid["y"], grid["y"] + grid["h"]):
                        self.assertIsNone(taken.get((x, y)),
                                          f"{panel['title']} overlaps it")
                        taken[(x, y)] = panel["title"]

    def test_every_expression_passes_promtool_as_a_recording_rule(self):
        rules = [{"record": f"remex:dashboard_{i}", "expr": expr}
                 for i, (_, _, expr) in enumerate(dashboard_expressions())]
        self.assertGreater(len(rules), 20)
        for _, _, expr in dashboard_expressions():
            self.assertNotIn("$", expr)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard.rules.yml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard",
                                            "rules": rules}]}, f)
            code, output = promtool("check", "rules", path)
        self.assertEqual(code, 0, output)
        self.assertIn(f"SUCCESS: {len(rules)} rules found", output)

    def test_a_broken_expression_would_be_caught(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "broken.rules.yml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": [{"name": "broken", "rules": [
                    {"record": "remex:broken", "expr": "sum by (pool (x)"}]}]},
                               f)
            code, _ = promtool("check", "rules", path)
        self.assertNotEqual(code, 0)


if __name__ == "__main__":
    PROMTOOL, MONITORING = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
