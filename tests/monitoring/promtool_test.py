#!/usr/bin/env python3
"""promtool checks of the files in monitoring/: the alert rules, their unit
tests (run exactly as by hand: `promtool test rules
monitoring/alerts/tests.yml` from the repository root), and every PromQL
expression of the Grafana dashboard, some of them evaluated against a
Prometheus that also scrapes other exporters.

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
# $job is what Grafana makes of "All" for a variable without allValue: the
# jobs it found, as a regex.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "(remex|kubernetes-pods)",
    "$namespace": ".*",
    "$instance": ".*",
    "$pool": ".*",
}

# The matchers every selector of the dashboard carries.
SCOPE = 'job=~"$job", namespace=~"$namespace", instance=~"$instance"'
# Series that other exporters export as well; the rules and the dashboard
# read them only joined with a metric of remex's own.
GENERIC_SERIES = re.compile(r"\b(up|process_[a-z_]+)\s*\{")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


def promtool(*args, cwd=None):
    """Runs promtool; returns (exit code, output)."""
    run = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120, check=False)
    return run.returncode, run.stdout + run.stderr


def rules_path():
    return os.path.join(MONITORING, "alerts", "remex.rules.yml")


def tests_path():
    return os.path.join(MONITORING, "alerts", "tests.yml")


def repo():
    return os.path.dirname(os.path.abspath(MONITORING))


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def alert_rules():
    """Alert name -> rule, from remex.rules.yml."""
    return {rule["alert"]: rule
            for group in load_yaml(rules_path())["groups"]
            for rule in group["rules"] if "alert" in rule}


def dashboard():
    path = os.path.join(MONITORING, "dashboards", "remex.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dashboard_panels(panels):
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def substitute(expr, variables=None):
    for variable, value in (variables or DASHBOARD_VARIABLES).items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_expressions(raw=False):
    """(panel title, refId, expr with the variables replaced, or as it is
    with raw)."""
    for panel in dashboard_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            yield (panel["title"], target["refId"],
                   expr if raw else substitute(expr))


def promtool_test_rules(tests):
    """Runs `promtool test rules` on the unit tests `tests` (a dict, as
    tests.yml holds them); returns its exit code and output."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "dashboard_test.yml"), "w",
                  encoding="utf-8") as f:
            yaml.safe_dump(tests, f, sort_keys=False)
        return promtool("test", "rules", "dashboard_test.yml", cwd=tmp)


def dashboard_expression(title, ref_id, variables=None):
    for panel_title, panel_ref, expr in dashboard_expressions(raw=True):
        if (panel_title, panel_ref) == (title, ref_id):
            return substitute(expr, variables)
    raise AssertionError("no panel %r with target %s" % (title, ref_id))


# One Prometheus scraping, in job kubernetes-pods (pods found by
# annotation), two remex servers (10.0.0.1 up, 10.0.0.2 down since minute
# 5) and an unrelated pod (10.0.0.3), plus node-exporter and
# kube-state-metrics in jobs of their own; every target exports process_*.
SHARED_PROMETHEUS = [
    ('up{job="kubernetes-pods", namespace="prod", instance="10.0.0.1:9464"}',
     "1x20"),
    ('remex_build_info{job="kubernetes-pods", namespace="prod", '
     'instance="10.0.0.1:9464", version="0.1.0", revision="abc"}', "1x20"),
    ('up{job="kubernetes-pods", namespace="prod", instance="10.0.0.2:9464"}',
     "1x4 0x15"),
    ('remex_build_info{job="kubernetes-pods", namespace="prod", '
     'instance="10.0.0.2:9464", version="0.1.0", revision="abc"}',
     "1x4 _x15"),
    ('up{job="kubernetes-pods", namespace="prod", instance="10.0.0.3:8080"}',
     "1x20"),
    ('up{job="node", instance="10.0.0.1:9100"}', "1x20"),
    ('up{job="kube-state-metrics", instance="10.0.0.9:8080"}', "1x20"),
]
for _instance, _job, _ns in (("10.0.0.1:9464", "kubernetes-pods", "prod"),
                             ("10.0.0.3:8080", "kubernetes-pods", "prod"),
                             ("10.0.0.1:9100", "node", None)):
    _labels = 'job="%s", %sinstance="%s"' % (
        _job, 'namespace="%s", ' % _ns if _ns else "", _instance)
    SHARED_PROMETHEUS += [
        ("process_resident_memory_bytes{%s}" % _labels, "1000x20"),
        ("process_virtual_memory_bytes{%s}" % _labels, "5000x20"),
        ("process_cpu_seconds_total{%s}" % _labels, "0+60x20"),
        ("process_threads{%s}" % _labels, "12x20"),
        ("process_open_fds{%s}" % _labels, "40x20"),
        ("process_max_fds{%s}" % _labels, "1024x20"),
        ("process_start_time_seconds{%s}" % _labels, "0x20"),
    ]
SHARED_PROMETHEUS.append(
    ('remex_fd_reserve{job="kubernetes-pods", namespace="prod", '
     'instance="10.0.0.1:9464"}', "24x20"))


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

    def test_every_alert_has_unit_tests_that_fire_and_stay_quiet(self):
        tests = load_yaml(tests_path())
        cases = [case for test in tests["tests"]
                 for case in test.get("alert_rule_test", [])]
        fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
        quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
        self.assertEqual(fired, set(alert_rules()))
        self.assertEqual(quiet, set(alert_rules()))

    def test_no_alert_names_a_job(self):
        """Whatever the scrape job is called, the rules apply."""
        for name, rule in alert_rules().items():
            with self.subTest(alert=name):
                self.assertNotRegex(rule["expr"], r"\bjob\s*=")

    def test_generic_series_are_joined_with_remex_ones(self):
        """up and process_* exist for every exporter: a rule reading them
        also reads a metric only remex exports (remex_build_info or
        remex_fd_reserve), so node-exporter's do not count."""
        for name, rule in alert_rules().items():
            if GENERIC_SERIES.search(rule["expr"] + " "):
                with self.subTest(alert=name):
                    self.assertRegex(rule["expr"],
                                     r"remex_build_info|remex_fd_reserve")
        self.assertIn("absent(", " ".join(r["expr"]
                                          for r in alert_rules().values()))

    def test_annotations_in_tests_yml_match_the_rules(self):
        """tests.yml holds a copy of each expected alert's annotations;
        scripts/sync-alert-tests.py makes it and --check compares it."""
        script = os.path.join(repo(), "scripts", "sync-alert-tests.py")
        run = subprocess.run([sys.executable, script, "--check", rules_path(),
                              tests_path()], capture_output=True, text=True,
                             timeout=60, check=False)
        self.assertEqual(run.returncode, 0, run.stderr)

    def test_rules_pass_their_unit_tests_run_by_hand(self):
        """Exactly what the README says to run, from the repository root."""
        code, output = promtool("test", "rules", "monitoring/alerts/tests.yml",
                                cwd=repo())
        self.assertEqual(code, 0, output)
        self.assertIn("SUCCESS", output)

    def run_unit_tests(self, tests):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(rules_path(), tmp)
            with open(os.path.join(tmp, "tests.yml"), "w",
                      encoding="utf-8") as f:
                yaml.safe_dump(tests, f, sort_keys=False)
            return promtool("test", "rules", "tests.yml", cwd=tmp)

    def test_unit_tests_fail_when_an_expected_alert_is_wrong(self):
        tests = load_yaml(tests_path())
        self.assertEqual(self.run_unit_tests(tests)[0], 0)
        for test in tests["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    alert["exp_labels"]["severity"] = "none"
        code, output = self.run_unit_tests(tests)
        self.assertNotEqual(code, 0, output)

    def test_unit_tests_fail_when_a_quiet_alert_fires(self):
        """The quiet cases are checked too: a rule that fires on anything
        breaks them."""
        with tempfile.TemporaryDirectory() as tmp:
            rules = load_yaml(rules_path())
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if rule.get("alert") == "RemexDown":
                        rule["expr"] = "up == 0"
            with open(os.path.join(tmp, "remex.rules.yml"), "w",
                      encoding="utf-8") as f:
                yaml.safe_dump(rules, f, sort_keys=False)
            shutil.copy(tests_path(), tmp)
            code, output = promtool("test", "rules", "tests.yml", cwd=tmp)
        self.assertNotEqual(code, 0, output)
        self.assertIn("RemexDown", output)


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
                       "process_resident_memory_bytes",
                       "remex_memory_budget_bytes", "remex_memory_used_bytes",
                       "remex_memory_rejected_total", "remex_connections_open",
                       "remex_connections_limit",
                       "remex_connections_refused_total", "remex_fd_reserve",
                       "process_open_fds", "process_max_fds",
                       "remex_sessions_open",
                       "remex_pool_oldest_queued_seconds"):
            self.assertIn(metric, exprs)
        for quantile in ("histogram_quantile(0.5,", "histogram_quantile(0.99,"):
            self.assertIn(quantile, exprs)

    def test_job_namespace_instance_and_pool_variables(self):
        variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
        self.assertEqual(list(variables),
                         ["datasource", "job", "namespace", "instance", "pool"])
        self.assertEqual(variables["job"]["query"]["query"],
                         "label_values(remex_build_info, job)")
        # "All" jobs must be the remex jobs found, not .* (which would let
        # node-exporter's up and process_* in).
        self.assertNotIn("allValue", variables["job"])
        self.assertIn('job=~"$job"', variables["namespace"]["definition"])
        self.assertIn('job=~"$job", namespace=~"$namespace"',
                      variables["instance"]["definition"])
        self.assertIn(SCOPE, variables["pool"]["definition"])
        for variable in list(variables.values())[1:]:
            with self.subTest(variable=variable["name"]):
                self.assertEqual(variable["query"]["query"],
                                 variable["definition"])
                self.assertTrue(variable["includeAll"])

    def test_every_selector_is_scoped_to_the_variables(self):
        for title, ref_id, expr in dashboard_expressions(raw=True):
            with self.subTest(panel=title, target=ref_id):
                selectors = SELECTOR.findall(expr)
                self.assertTrue(selectors, expr)
                for metric, matchers in selectors:
                    self.assertIn(SCOPE, matchers, metric)
                if GENERIC_SERIES.search(expr):
                    self.assertRegex(
                        expr, r"on \(job, instance\) (last_over_time\()?"
                              r"remex_(build_info|fd_reserve)\{")

    def test_latency_by_method_leaves_out_streams_and_long_polls(self):
        """Session is recorded once, when the stream ends, with its whole
        lifetime, and Await waits for its task: neither is a latency."""
        for title, _, expr in dashboard_expressions(raw=True):
            if title.startswith("Latency p99 by method"):
                self.assertIn('method!~"Await|Session"', expr)
        sessions = [t for t, _, e in dashboard_expressions(raw=True)
                    if 'method="Session"' in e]
        self.assertIn("Session lifetime p50 / p99", sessions)

    def test_panels_count_only_remex_servers(self):
        """The overview and process panels, evaluated by promtool against a
        Prometheus that scrapes node-exporter, kube-state-metrics and other
        pods (some in remex's own job) next to two remex servers, one of
        them down: one server up, one down, and one process's series."""
        variables = dict(DASHBOARD_VARIABLES, **{"$job": "(kubernetes-pods)"})
        remex = 'job="kubernetes-pods", namespace="prod", instance="10.0.0.1:9464"'

        def samples(name, value):
            return [{"labels": name, "value": value}]

        expected = {
            ("Servers up", "A"): [{"labels": "{}", "value": 1}],
            ("Servers up", "B"): [{"labels": "{}", "value": 1}],
            ("Memory", "A"): samples(
                "process_resident_memory_bytes{%s}" % remex, 1000),
            ("Memory", "B"): samples(
                "process_virtual_memory_bytes{%s}" % remex, 5000),
            ("Process CPU", "A"): samples("{%s}" % remex, 1),
            ("Threads", "A"): samples("process_threads{%s}" % remex, 12),
            ("Uptime", "A"): samples("{%s}" % remex, 600),
            ("Open files", "A"): samples("process_open_fds{%s}" % remex, 40),
            ("Open files", "B"): samples(
                '{job="kubernetes-pods", instance="10.0.0.1:9464"}', 1000),
            ("Open files", "C"): samples("process_max_fds{%s}" % remex, 1024),
        }
        tests = {
            "rule_files": [],
            "evaluation_interval": "1m",
            "tests": [{
                "interval": "1m",
                "input_series": [{"series": s, "values": v}
                                 for s, v in SHARED_PROMETHEUS],
                "promql_expr_test": [
                    {"expr": dashboard_expression(title, ref_id, variables),
                     "eval_time": "10m", "exp_samples": exp}
                    for (title, ref_id), exp in expected.items()],
            }],
        }
        code, output = promtool_test_rules(tests)
        self.assertEqual(code, 0, output)
        # The old "Servers up", sum(up{instance=~".*"}), counts the
        # exporters and the other pod too: the fixture would catch it.
        tests["tests"][0]["promql_expr_test"] = [{
            "expr": "sum(up)", "eval_time": "10m",
            "exp_samples": expected[("Servers up", "A")]}]
        code, output = promtool_test_rules(tests)
        self.assertNotEqual(code, 0, output)

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
