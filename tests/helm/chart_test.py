#!/usr/bin/env python3
"""Offline tests of the Helm chart helm/remex: no cluster, no helm binary.

The chart is rendered by tests/helm/render (Go text/template + sprig, what
Helm runs) for the least secure values (tests/helm/values/auth-values.yaml:
the defaults alone refuse to render an open server), for each way of
securing it (tokens from values or a Secret, TLS, mTLS, cert-manager), for
security.mode: insecure, for replicas on a shared store (three, or an
autoscaler), and for every option switched on, and:

  RenderTest            the rendered objects follow the chart's promises
                        (labels, probes, security, grace periods, who may
                        connect, the helm test hook, ...); the chart is
                        self-contained (its monitoring/ files are copies,
                        byte for byte) and renders as a subchart of a
                        parent chart that sets global values;
  ValuesSchemaTest      values.schema.json takes good values (also the
                        README's example) and refuses typos and
                        out-of-range values;
  KubernetesSchemaTest  every rendered object is valid for the Kubernetes
                        (and prometheus-operator) object schemas of npm's
                        kubernetes-models, with no unknown field;
  YamllintTest          the chart's YAML and the rendered manifests pass
                        yamllint with tests/helm/yamllint.yaml;
  ImageTest             the Dockerfile's runtime packages hold every shared
                        library of remex-server; its user, init and paths
                        are the chart's;
  ServerRunTest         the real remex-server runs with exactly the command
                        line of the rendered Deployment and the config file of
                        the rendered ConfigMap (only the listen addresses are
                        moved to 127.0.0.1:0, the Secrets' files written
                        where the pod mounts them, certificates made with
                        openssl), answers health SERVING as the probes ask,
                        refuses callers without a token or certificate, runs
                        a task and drains on SIGTERM as the pod's grace
                        expects, and the helm test hook's health check
                        passes against it. Its secure cases need a
                        remex-server with --auth, --tls-* and --insecure.

Usage (ctest runs it; see tests/helm/CMakeLists.txt):
  chart_test.py --renderer RENDER --server REMEX_SERVER
                [--node-modules DIR] TESTCLASS...
"""

import argparse
import base64
import copy
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(REPO, "helm", "remex")
VALUES_DIR = os.path.join(HERE, "values")
FULL_VALUES = os.path.join(VALUES_DIR, "full.yaml")
SERVER_RUN_VALUES = os.path.join(VALUES_DIR, "server-run.yaml")
# The least a secure install sets (tokens from values): what the tests render
# where they rendered the bare defaults before those refused to render.
AUTH_VALUES = os.path.join(VALUES_DIR, "auth-values.yaml")
AUTH_SECRET_VALUES = os.path.join(VALUES_DIR, "auth-secret.yaml")
TLS_VALUES = os.path.join(VALUES_DIR, "tls.yaml")
MTLS_VALUES = os.path.join(VALUES_DIR, "mtls.yaml")
CERT_MANAGER_VALUES = os.path.join(VALUES_DIR, "cert-manager.yaml")
STORE_VALUES = os.path.join(VALUES_DIR, "store.yaml")
# Several replicas on one database, and an autoscaler over them.
REPLICAS_VALUES = os.path.join(VALUES_DIR, "replicas.yaml")
AUTOSCALING_VALUES = os.path.join(VALUES_DIR, "autoscaling.yaml")
INSECURE_VALUES = os.path.join(VALUES_DIR, "insecure.yaml")
# Every rendering the schema, Kubernetes and yamllint tests check.
CASES = {
    "auth-values": (AUTH_VALUES,),
    "auth-secret": (AUTH_SECRET_VALUES,),
    "tls": (TLS_VALUES,),
    "mtls": (MTLS_VALUES,),
    "cert-manager": (CERT_MANAGER_VALUES,),
    "store": (STORE_VALUES,),
    "replicas": (REPLICAS_VALUES,),
    "autoscaling": (AUTOSCALING_VALUES,),
    "insecure": (INSECURE_VALUES,),
    "full": (FULL_VALUES,),
    "server-run": (SERVER_RUN_VALUES,),
}
# The bearer tokens whose SHA-256 the values files hold (tests only).
TOKENS = {"alice": "remex-test-token-alice", "bob": "remex-test-token-bob"}
# What a render of the bare defaults must say (secure by default).
OPEN_SERVER_MESSAGE = "nothing authenticates its callers"
SECRETS_DIR = "/var/run/secrets/remex"
YAMLLINT_CONFIG = os.path.join(HERE, "yamllint.yaml")
VALIDATE_JS = os.path.join(HERE, "validate_k8s.js")
DOCKERFILE = os.path.join(REPO, "Dockerfile")
CHART_README = os.path.join(CHART, "README.md")
RUNTIME_PACKAGES = os.path.join(REPO, "scripts", "runtime-packages.txt")

RENDERER = None
SERVER = None
NODE_MODULES = None

# The server's pods run as this user; the image's Dockerfile creates it.
NON_ROOT_UID = 65532
START_TIMEOUT_S = 30
RPC_TIMEOUT_S = 10


class RenderError(Exception):
    pass


def render(*value_files, notes=False, values_json=None):
    """Renders the chart; returns the objects (or NOTES.txt) as text."""
    command = [RENDERER, "-chart", CHART]
    for path in value_files:
        command += ["-f", path]
    if notes:
        command.append("-notes")
    if values_json:
        command += ["-values-json", values_json]
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=60, check=False)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return result.stdout


def split_sources(text):
    """{"remex/templates/x.yaml": [doc text, ...]} of a rendering."""
    sources = {}
    for doc in re.split(r"(?m)^---\n", text):
        match = re.match(r"# Source: (\S+)\n", doc)
        if doc.strip():
            if not match:
                raise AssertionError("document without # Source: %r" % doc)
            sources.setdefault(match.group(1), []).append(doc)
    return sources


def load_objects(text):
    return [o for o in yaml.safe_load_all(text) if o is not None]


def by_kind(objects):
    kinds = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def one(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    if len(found) != 1:
        raise AssertionError("expected one %s, got %d" % (kind, len(found)))
    return found[0]


def write_values(directory, name, values):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(values, f)
    return path


def flag_value(args, name):
    """The value of --name=VALUE or --name VALUE in a list of args."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def go_duration_seconds(text):
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("bad duration %r" % text)
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


class Rendered:
    """One rendering: its text and objects, cached per set of value files."""
    _cache = {}

    @classmethod
    def of(cls, *value_files):
        if value_files not in cls._cache:
            text = render(*value_files)
            cls._cache[value_files] = (text, load_objects(text))
        return cls._cache[value_files]


class RenderTest(unittest.TestCase):
    """What the rendered objects promise, for the defaults and all options."""

    def check_common(self, objects):
        for obj in objects:
            labels = obj["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                        "app.kubernetes.io/version",
                        "app.kubernetes.io/managed-by", "helm.sh/chart"):
                self.assertIn(key, labels, obj["kind"])
            self.assertLessEqual(len(obj["metadata"]["name"]), 63)

        deployment = one(objects, "Deployment")
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        selector = spec["selector"]["matchLabels"]
        for key, value in selector.items():
            self.assertEqual(spec["template"]["metadata"]["labels"][key], value)
        self.assertNotIn("app.kubernetes.io/version", selector,
                         "the selector must not change with the version")

        services = [o for o in objects if o["kind"] == "Service"]
        for service in services:
            self.assertEqual(service["spec"]["selector"], selector)
        service = services[0]
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        self.assertEqual(ports["grpc"]["appProtocol"], "grpc")
        # The metrics port is meant to stay inside the cluster: only
        # ClusterIP Services carry it.
        for other in services:
            if any(p["name"] == "metrics" for p in other["spec"]["ports"]):
                self.assertEqual(other["spec"].get("type", "ClusterIP"),
                                 "ClusterIP", other["metadata"]["name"])

        # The server first, then any extraContainers.
        container = pod["containers"][0]
        self.assertEqual(container["name"], "server")
        args = container["args"]
        listen_port = int(flag_value(args, "--listen").rsplit(":", 1)[1])
        container_ports = {p["name"]: p["containerPort"]
                           for p in container["ports"]}
        self.assertEqual(container_ports["grpc"], listen_port)
        self.assertEqual(ports["grpc"]["targetPort"], "grpc")

        # Probes on the served port: native gRPC without TLS; with TLS a
        # tcpSocket probe (the kubelet's gRPC probe cannot speak TLS).
        tls = flag_value(args, "--tls-cert") is not None
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            action = "tcpSocket" if tls else "grpc"
            self.assertEqual(
                sorted(set(container[probe]) & {"grpc", "tcpSocket", "exec",
                                                "httpGet"}), [action])
            self.assertEqual(container[probe][action]["port"], listen_port)

        # Restricted security context.
        pod_security = pod["securityContext"]
        security = container["securityContext"]
        self.assertTrue(pod_security["runAsNonRoot"])
        self.assertEqual(pod_security["runAsUser"], NON_ROOT_UID)
        self.assertEqual(pod_security["seccompProfile"]["type"],
                         "RuntimeDefault")
        self.assertFalse(security["allowPrivilegeEscalation"])
        self.assertTrue(security["readOnlyRootFilesystem"])
        self.assertEqual(security["capabilities"]["drop"], ["ALL"])
        self.assertFalse(pod["automountServiceAccountToken"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertIn("emptyDir", volumes[mounts["/tmp"]],
                      "/tmp must be writable on a read-only root")
        self.check_security(objects, container, volumes, selector)
        self.assertIn("cpu", container["resources"]["limits"])
        self.assertIn("memory", container["resources"]["limits"])

        # The config file the server reads is the ConfigMap's.
        config_map = [o for o in objects if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"] ==
                      volumes["config"]["configMap"]["name"]]
        self.assertEqual(len(config_map), 1)
        config_path = flag_value(args, "--config")
        mount = os.path.dirname(config_path)
        self.assertEqual(mounts[mount], "config")
        config = yaml.safe_load(
            config_map[0]["data"][os.path.basename(config_path)])
        self.assertIn("pools", config)
        self.assertNotIn("shutdown_grace", config,
                         "the grace is set once, by --shutdown-grace")

        # Grace: the pod's grace covers the preStop pause, the drain grace
        # and the 3 s the server waits for functions that ignore cancel.
        grace = go_duration_seconds(flag_value(args, "--shutdown-grace"))
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop[0], "/bin/sleep")
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"],
                                int(pre_stop[1]) + grace + 3 + 2)
        # With a store, after the grace the server hands its running tasks
        # back; if the database hangs it exits 1 at grace + 20 s. The
        # kubelet must not kill it before.
        store = "REMEX_STORE" in [e["name"] for e in container.get("env", [])]
        if store:
            self.assertGreaterEqual(pod["terminationGracePeriodSeconds"],
                                    int(pre_stop[1]) + grace + 20 + 2)
        # The pod names itself by its host name (the pod name): one name
        # per replica. A name in the command line or the config would be
        # shared by every replica.
        self.assertIsNone(flag_value(args, "--replica-name"))

        self.check_scaling(objects, deployment, store, selector)
        self.check_helm_test(objects, deployment, services[0], tls)
        return deployment, config

    def check_helm_test(self, objects, deployment, service, tls):
        """The helm test hook: a Pod of the server's image that asks the
        Service for health (only for a TCP connection with TLS), is no
        endpoint of it, and runs as restricted as the server."""
        pods = [o for o in objects if o["kind"] == "Pod"]
        self.assertEqual(len(pods), 1)
        test = pods[0]
        annotations = test["metadata"]["annotations"]
        self.assertEqual(annotations["helm.sh/hook"], "test")
        self.assertIn("before-hook-creation",
                      annotations["helm.sh/hook-delete-policy"])
        labels = test["metadata"]["labels"]
        self.assertFalse(all(labels.get(k) == v for k, v in
                             service["spec"]["selector"].items()),
                         "the Service would send clients to the test Pod")
        pod = deployment["spec"]["template"]["spec"]
        server = pod["containers"][0]
        self.assertEqual(test["spec"]["restartPolicy"], "Never")
        self.assertEqual(test["spec"]["securityContext"],
                         pod["securityContext"])
        self.assertFalse(test["spec"]["automountServiceAccountToken"])
        container = test["spec"]["containers"][0]
        self.assertEqual(container["image"], server["image"])
        self.assertEqual(container["securityContext"],
                         server["securityContext"])
        command = container["command"]
        self.assertEqual(command[:2], ["/bin/bash", "-c"])
        host, port, health_service = command[4:7]
        self.assertEqual(host, "%s.%s.svc" % (
            service["metadata"]["name"], service["metadata"]["namespace"]))
        grpc_port = [p for p in service["spec"]["ports"]
                     if p["name"] == "grpc"][0]["port"]
        self.assertEqual(int(port), grpc_port)
        if tls:
            self.assertEqual(health_service, "--tcp")
        else:
            probe = server["readinessProbe"]["grpc"]
            self.assertEqual(health_service, probe.get("service", ""))

    def check_scaling(self, objects, deployment, store, selector):
        """More than one replica, or an autoscaler, only on a store (with
        the memory store a task lives in the replica that accepted it); an
        autoscaled Deployment has no replicas field for helm upgrade to
        reset; the PodDisruptionBudget lets a drain evict a pod."""
        spec = deployment["spec"]
        hpas = by_kind(objects).get("HorizontalPodAutoscaler", [])
        if not store:
            self.assertLessEqual(spec["replicas"], 1)
            self.assertEqual(hpas, [])
        for hpa in hpas:
            self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
            self.assertEqual(hpa["spec"]["scaleTargetRef"], {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "name": deployment["metadata"]["name"]})
            self.assertNotIn("replicas", spec, "the HPA sets them")
            self.assertLessEqual(hpa["spec"]["minReplicas"],
                                 hpa["spec"]["maxReplicas"])
        if "replicas" in spec:
            replicas = [spec["replicas"]]
        elif hpas:
            replicas = [hpas[0]["spec"]["minReplicas"],
                        hpas[0]["spec"]["maxReplicas"]]
        else:
            replicas = []  # An autoscaler of the operator's (KEDA).
        pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        for pdb in pdbs:
            self.assertEqual(pdb["spec"]["selector"]["matchLabels"], selector)
            # Voluntary evictions (node drains) are possible with more than
            # one replica: the budget never asks for all of them.
            budget = pdb["spec"]
            if "maxUnavailable" in budget:
                self.assertNotIn(budget["maxUnavailable"], (0, "0%"))
            elif isinstance(budget["minAvailable"], int):
                for count in replicas:
                    if count > 1:
                        self.assertLess(budget["minAvailable"], count)
        return replicas

    def check_security(self, objects, container, volumes, selector):
        """Callers authenticate unless the command line says --insecure;
        the key and auth files come from read-only Secret mounts that the
        kubelet updates; the NetworkPolicy selects the server's pods."""
        args = container["args"]
        authenticated = any(flag_value(args, f) for f in ("--auth",
                                                          "--tls-client-ca"))
        self.assertNotEqual(authenticated, "--insecure" in args, args)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for flag in ("--auth", "--tls-cert", "--tls-key", "--tls-client-ca"):
            path = flag_value(args, flag)
            if path is None:
                continue
            self.assertTrue(path.startswith(SECRETS_DIR + "/"), path)
            mount = mounts[os.path.dirname(path)]
            self.assertTrue(mount.get("readOnly"), flag)
            self.assertNotIn("subPath", mount,
                             "a subPath mount is never updated (SIGHUP)")
            volume = volumes[mount["name"]]
            source = volume.get("secret") or volume.get("configMap")
            self.assertIn(os.path.basename(path),
                          [item["path"] for item in source["items"]])
            if flag != "--tls-client-ca":
                self.assertIn("secret", volume, flag + " from a Secret")
                self.assertEqual(source["defaultMode"], 0o440)
        if "--tls-client-ca" in " ".join(args):
            self.assertIsNotNone(flag_value(args, "--tls-cert"))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for policy in [o for o in objects if o["kind"] == "NetworkPolicy"]:
            self.assertEqual(policy["spec"]["podSelector"]["matchLabels"],
                             selector)
            self.assertIn("Ingress", policy["spec"]["policyTypes"])
            for rule in policy["spec"]["ingress"]:
                for port in rule.get("ports", []):
                    if isinstance(port["port"], str):
                        self.assertIn(port["port"], ports)

    def test_defaults_refuse_to_render_an_open_server(self):
        """Secure by default: no auth, no mTLS and no security.mode:
        insecure fails the render, saying what to set."""
        with self.assertRaises(RenderError) as failed:
            render()
        message = str(failed.exception)
        for words in (OPEN_SERVER_MESSAGE, "auth.principals",
                      "auth.existingSecret", "tls.clientCA",
                      "security.mode: insecure"):
            self.assertIn(words, message)
        # The notes too: nothing of an open server is printed.
        with self.assertRaisesRegex(RenderError, OPEN_SERVER_MESSAGE):
            render(notes=True)

    def test_least_secure_values(self):
        """auth-values.yaml: the defaults plus principals."""
        _, objects = Rendered.of(AUTH_VALUES)
        deployment, config = self.check_common(objects)
        kinds = sorted(by_kind(objects))
        self.assertEqual(kinds, ["ConfigMap", "Deployment", "NetworkPolicy",
                                 "Pod", "PodDisruptionBudget", "Secret",
                                 "Service", "ServiceAccount"])
        spec = deployment["spec"]
        self.assertEqual(spec["replicas"], 1)
        container = spec["template"]["spec"]["containers"][0]
        self.assertEqual(container["command"],
                         ["/usr/bin/tini", "--", "/usr/local/bin/remex-server"])
        self.assertEqual(container["args"], [
            "--listen=0.0.0.0:50051",
            "--config=/etc/remex/config.yaml",
            "--shutdown-grace=10s",
            "--metrics-listen=0.0.0.0:9464",
            "--log-format=json",
            "--log-level=info",
            "--auth=/var/run/secrets/remex/auth/auth.yaml",
        ])
        self.assertEqual(spec["template"]["spec"]
                         ["terminationGracePeriodSeconds"], 25)
        self.assertEqual(config["pools"][0]["name"], "default")
        # A PDB with one replica must not block node drains by default.
        pdb = one(objects, "PodDisruptionBudget")
        self.assertEqual(pdb["spec"], {"maxUnavailable": 1,
                                       "selector": pdb["spec"]["selector"]})
        ports = {p["name"]: p["port"]
                 for p in one(objects, "Service")["spec"]["ports"]}
        self.assertEqual(ports, {"grpc": 50051, "metrics": 9464})
        annotations = spec["template"]["metadata"]["annotations"]
        self.assertNotIn("prometheus.io/scrape", annotations)

        # The auth file: the values' principals, in a Secret the pod mounts.
        secret = one(objects, "Secret")
        self.assertEqual(secret["metadata"]["name"], "remex-auth")
        auth = yaml.safe_load(secret_data(secret)["auth.yaml"])
        with open(AUTH_VALUES, encoding="utf-8") as f:
            principals = yaml.safe_load(f)["auth"]["principals"]
        self.assertEqual(auth, {"principals": principals})
        volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["auth"]["secret"]["secretName"], "remex-auth")
        # New principals roll the pod.
        self.assertIn("checksum/auth", annotations)
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"auth": {"principals": [
                {"name": "carol", "token_sha256": "0" * 64}]}})
            changed = load_objects(render(AUTH_VALUES, values))
        self.assertNotEqual(
            one(changed, "Deployment")["spec"]["template"]["metadata"][
                "annotations"]["checksum/auth"], annotations["checksum/auth"])

        # The NetworkPolicy: gRPC from the release's namespace, metrics
        # from the monitoring namespace, egress open.
        policy = one(objects, "NetworkPolicy")["spec"]
        self.assertEqual(policy["policyTypes"], ["Ingress"])
        self.assertEqual(policy["ingress"], [
            {"ports": [{"port": "grpc", "protocol": "TCP"}],
             "from": [{"podSelector": {}}]},
            {"ports": [{"port": "metrics", "protocol": "TCP"}],
             "from": [{"namespaceSelector": {"matchLabels": {
                 "kubernetes.io/metadata.name": "monitoring"}}}]},
        ])

    def test_full_options(self):
        _, objects = Rendered.of(FULL_VALUES)
        deployment, config = self.check_common(objects)
        kinds = by_kind(objects)
        self.assertEqual(sorted(kinds), [
            "Certificate", "ConfigMap", "Deployment",
            "HorizontalPodAutoscaler", "NetworkPolicy", "Pod",
            "PodDisruptionBudget", "PrometheusRule", "Secret", "Service",
            "ServiceAccount", "ServiceMonitor"])
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        self.assertEqual(container["args"], [
            "--listen=0.0.0.0:8443",
            "--config=/etc/remex/config.yaml",
            "--shutdown-grace=60s",
            "--metrics-listen=0.0.0.0:9100",
            "--log-format=text",
            "--log-level=debug",
            "--memory-budget=3GiB",
            "--plugin=/opt/remex/plugins/libfirst.so",
            "--plugin=/opt/remex/plugins/libsecond.so.1",
            "--auth=/var/run/secrets/remex/auth/auth.yaml",
            "--tls-cert=/var/run/secrets/remex/tls/tls.crt",
            "--tls-key=/var/run/secrets/remex/tls/tls.key",
            "--tls-client-ca=/var/run/secrets/remex/client-ca/ca.crt",
            "--enable-test-functions",
        ])
        # A store: the margin is storeExtraSeconds (30), not extraSeconds.
        self.assertEqual(pod["spec"]["terminationGracePeriodSeconds"],
                         10 + 60 + 30)
        self.assertNotIn("replicas", deployment["spec"])
        self.assertEqual(deployment["spec"]["strategy"], {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}})
        hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
        self.assertEqual((hpa["minReplicas"], hpa["maxReplicas"]), (3, 12))
        self.assertEqual(hpa["metrics"], [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization",
                                      "averageUtilization": 60}}}])
        self.assertEqual(hpa["behavior"], {"scaleDown": {
            "stabilizationWindowSeconds": 900}})
        self.assertTrue(container["image"].endswith("@sha256:" + "0123456789abcdef" * 4))
        annotations = pod["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], "9100")
        # TLS: tcpSocket probes (probes.grpcService is for gRPC probes).
        for probe in ("livenessProbe", "readinessProbe"):
            self.assertEqual(container[probe]["tcpSocket"], {"port": 8443})
        certificate = one(objects, "Certificate")["spec"]
        self.assertEqual(certificate["secretName"], "remex-full-cert")
        self.assertEqual(certificate["dnsNames"][-2:], [
            "remex-full.default.svc.cluster.example", "remex.example.com"])
        self.assertEqual(config["pools"][1]["kind"], "process")
        self.assertEqual(config["functions"][0]["command"],
                         ["/bin/uname", "-a"])

        mounts = {m["name"]: m for m in container["volumeMounts"]}
        self.assertEqual(mounts["plugins"]["mountPath"], "/opt/remex/plugins")
        self.assertTrue(mounts["plugins"]["readOnly"])

        monitor = one(objects, "ServiceMonitor")
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "metrics")
        self.assertEqual(monitor["metadata"]["labels"]["release"],
                         "kube-prometheus-stack")
        # LoadBalancer: gRPC on it, the metrics on a ClusterIP Service.
        services = {o["metadata"]["name"]: o for o in kinds["Service"]}
        self.assertEqual(sorted(services),
                         ["remex-full", "remex-full-metrics"])
        self.assertEqual([p["name"] for p in
                          services["remex-full"]["spec"]["ports"]], ["grpc"])
        service = services["remex-full-metrics"]
        self.assertEqual(service["spec"]["type"], "ClusterIP")
        self.assertEqual(service["spec"]["ports"][0]["port"], 9100)
        for key, value in monitor["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(service["metadata"]["labels"][key], value)
        # The job is the chart name (the alert rules and the dashboard work
        # with any job name; a stable one keeps the history together).
        job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
        self.assertEqual(job, "remex")

        rule = one(objects, "PrometheusRule")
        rules_file = yaml.safe_load(files_get("monitoring/alerts/remex.rules.yml"))
        self.assertEqual(rule["spec"]["groups"], rules_file["groups"])

        dashboards = [o for o in kinds["ConfigMap"]
                      if "grafana_dashboard" in o["metadata"]["labels"]]
        self.assertEqual(len(dashboards), 1)
        self.assertEqual(dashboards[0]["metadata"]["namespace"], "monitoring")
        self.assertEqual(
            json.loads(dashboards[0]["data"]["remex.json"]),
            json.loads(files_get("monitoring/dashboards/remex.json")))

        self.assertEqual(one(objects, "PodDisruptionBudget")["spec"]
                         ["minAvailable"], 1)
        self.assertEqual([c["name"] for c in pod["spec"]["containers"]],
                         ["server", "reloader", "sidecar"])
        self.assertEqual([c["name"] for c in pod["spec"]["initContainers"]],
                         ["fetch-plugins"])
        self.assertEqual(pod["spec"]["runtimeClassName"], "gvisor")

    def test_grpc_probes_ask_for_the_health_service(self):
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"probes": {
                "grpcService": "remex.v1.Executor"}})
            objects = load_objects(render(AUTH_VALUES, values))
        container = one(objects, "Deployment")["spec"]["template"]["spec"][
            "containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            self.assertEqual(container[probe]["grpc"],
                             {"port": 50051, "service": "remex.v1.Executor"})
        test = one(objects, "Pod")["spec"]["containers"][0]
        self.assertEqual(test["command"][6], "remex.v1.Executor")

    def test_startup_probe_gives_a_slow_start_time(self):
        """The startup probe holds liveness back for its whole budget (2
        minutes by default), then a hung server is restarted as quickly as
        before; null leaves it out."""
        _, objects = Rendered.of(AUTH_VALUES)
        container = one(objects, "Deployment")["spec"]["template"]["spec"][
            "containers"][0]
        startup = container["startupProbe"]
        self.assertGreaterEqual(
            startup["periodSeconds"] * startup["failureThreshold"], 120)
        self.assertEqual(container["livenessProbe"]["initialDelaySeconds"], 0)
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"probes": {"startup": None}})
            objects = load_objects(render(AUTH_VALUES, values))
        container = one(objects, "Deployment")["spec"]["template"]["spec"][
            "containers"][0]
        self.assertNotIn("startupProbe", container)
        self.assertIn("livenessProbe", container)

    def test_helm_test_hook_can_be_switched_off(self):
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"tests": {"enabled": False}})
            objects = load_objects(render(AUTH_VALUES, values))
        self.assertEqual([o for o in objects if o["kind"] == "Pod"], [])

    def test_renders_as_a_subchart_with_global_values(self):
        """A parent chart with remex in charts/ (as `helm dependency build`
        leaves it) and global values: Helm hands the subchart its values
        with the parent's global merged in and checks them against
        values.schema.json, which must accept global; the objects are the
        release's, from the subchart's templates and files."""
        import jsonschema  # pylint: disable=import-outside-toplevel
        with open(os.path.join(CHART, "values.schema.json"),
                  encoding="utf-8") as f:
            schema = json.load(f)
        with open(AUTH_VALUES, encoding="utf-8") as f:
            remex_values = yaml.safe_load(f)
        remex_values["monitoring"] = {"prometheusRule": {"enabled": True},
                                      "grafanaDashboard": {"enabled": True}}
        with tempfile.TemporaryDirectory() as tmp:
            parent = os.path.join(tmp, "shop")
            os.makedirs(os.path.join(parent, "templates"))
            shutil.copytree(CHART, os.path.join(parent, "charts", "remex"),
                            symlinks=True)
            with open(os.path.join(parent, "Chart.yaml"), "w",
                      encoding="utf-8") as f:
                yaml.safe_dump({
                    "apiVersion": "v2", "name": "shop", "version": "1.0.0",
                    "dependencies": [{"name": "remex", "version": "0.1.0",
                                      "repository": "file://../remex"}]}, f)
            write_values(parent, "values.yaml", {
                "global": {"imageRegistry": "registry.example.com",
                           "imagePullSecrets": [{"name": "pull"}],
                           "storageClass": "fast"},
                "remex": remex_values})
            with open(os.path.join(parent, "templates", "cm.yaml"), "w",
                      encoding="utf-8") as f:
                f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                        "  name: {{ .Release.Name }}-shop\ndata:\n"
                        "  remex: {{ .Values.remex.service.port | quote }}\n")
            values_json = os.path.join(tmp, "values.json")
            result = subprocess.run(
                [RENDERER, "-chart", parent, "-name", "shop", "-namespace",
                 "prod", "-values-json", values_json],
                capture_output=True, text=True, timeout=60, check=False)
            self.assertEqual(result.returncode, 0, result.stderr)
            with open(os.path.join(tmp, "values.remex.json"),
                      encoding="utf-8") as f:
                subchart_values = json.load(f)

        self.assertEqual(subchart_values["global"]["imageRegistry"],
                         "registry.example.com")
        validator = jsonschema.Draft7Validator(schema)
        self.assertEqual([e.message for e in
                          validator.iter_errors(subchart_values)], [])
        # A schema that forbade global would refuse these values.
        closed = copy.deepcopy(schema)
        del closed["properties"]["global"]
        self.assertTrue(list(jsonschema.Draft7Validator(closed).iter_errors(
            subchart_values)))

        sources = split_sources(result.stdout)
        self.assertIn("shop/templates/cm.yaml", sources)
        self.assertIn("shop/charts/remex/templates/deployment.yaml", sources)
        parent_map = load_objects(sources.pop("shop/templates/cm.yaml")[0])
        self.assertEqual(parent_map[0]["data"]["remex"], "50051")
        objects = load_objects("---\n".join(d for docs in sources.values()
                                       for d in docs))
        deployment = one(objects, "Deployment")
        self.assertEqual(deployment["metadata"]["name"], "shop-remex")
        self.assertEqual(deployment["metadata"]["namespace"], "prod")
        self.check_common(objects)
        # The monitoring files come from the subchart itself.
        rule = one(objects, "PrometheusRule")
        with open(os.path.join(REPO, "monitoring", "alerts",
                               "remex.rules.yml"), encoding="utf-8") as f:
            self.assertEqual(rule["spec"]["groups"],
                             yaml.safe_load(f)["groups"])

    def pod(self, *value_files):
        _, objects = Rendered.of(*value_files)
        self.check_common(objects)
        deployment = one(objects, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        return (objects, pod, pod["containers"][0],
                {v["name"]: v for v in pod["volumes"]})

    def test_auth_from_an_existing_secret(self):
        objects, _, container, volumes = self.pod(AUTH_SECRET_VALUES)
        self.assertNotIn("Secret", by_kind(objects), "the Secret is yours")
        self.assertEqual(flag_value(container["args"], "--auth"),
                         SECRETS_DIR + "/auth/remex-auth.yaml")
        self.assertEqual(volumes["auth"]["secret"], {
            "secretName": "remex-principals",
            "items": [{"key": "remex-auth.yaml", "path": "remex-auth.yaml"}],
            "defaultMode": 0o440})
        annotations = one(objects, "Deployment")["spec"]["template"][
            "metadata"]["annotations"]
        self.assertNotIn("checksum/auth", annotations,
                         "the chart cannot see the Secret: SIGHUP rereads it")

    def test_store_from_an_existing_secret(self):
        objects, _, container, _ = self.pod(STORE_VALUES)
        self.assertNotIn("Secret", by_kind(objects), "the Secret is yours")
        env = {e["name"]: e for e in container.get("env", [])}
        self.assertEqual(env["REMEX_STORE"]["valueFrom"], {
            "secretKeyRef": {"name": "remex-postgres", "key": "uri"}})
        self.assertNotIn("--store", container["args"],
                         "the URL holds a password: never in the spec")
        # Replicas share the database: no Recreate; the chart's strategy.
        spec = one(objects, "Deployment")["spec"]
        self.assertEqual(spec["strategy"], {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        self.assertEqual(spec["replicas"], 1)
        # preStop 5 + grace 10 + storeExtraSeconds 25: the hand-back of the
        # tasks still running, and the server's 20 s bound when the
        # database hangs; without a store, extraSeconds (10).
        self.assertEqual(spec["template"]["spec"]
                         ["terminationGracePeriodSeconds"], 5 + 10 + 25)
        _, plain_pod, plain, _ = self.pod(AUTH_SECRET_VALUES)
        self.assertNotIn("REMEX_STORE",
                         [e["name"] for e in plain.get("env", [])])
        self.assertEqual(plain_pod["terminationGracePeriodSeconds"],
                         5 + 10 + 10)

    def test_replicas_share_a_store(self):
        """replicas.yaml: three replicas on one database roll one pod at a
        time, and node drains evict one at a time."""
        objects, pod, container, _ = self.pod(REPLICAS_VALUES)
        deployment = one(objects, "Deployment")
        spec = deployment["spec"]
        self.assertEqual(spec["replicas"], 3)
        self.assertEqual(spec["strategy"], {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        self.assertNotIn("HorizontalPodAutoscaler", by_kind(objects))
        pdb = one(objects, "PodDisruptionBudget")["spec"]
        self.assertEqual(pdb["maxUnavailable"], 1)
        self.assertNotIn("minAvailable", pdb)
        env = {e["name"]: e for e in container["env"]}
        self.assertEqual(env["REMEX_STORE"]["valueFrom"], {
            "secretKeyRef": {"name": "remex-postgres", "key": "uri"}})
        self.assertEqual(pod["terminationGracePeriodSeconds"], 5 + 10 + 25)
        config = yaml.safe_load(one(objects, "ConfigMap")["data"][
            "config.yaml"])
        self.assertEqual(config["replica_lease"], "15s")
        self.assertNotIn("replica_name", config)
        # A larger storeExtraSeconds, or a larger extraSeconds, wins.
        with tempfile.TemporaryDirectory() as tmp:
            for extra, store_extra, expected in ((10, 40, 40), (50, 25, 50)):
                values = write_values(tmp, "v.yaml", {"shutdown": {
                    "extraSeconds": extra, "storeExtraSeconds": store_extra}})
                objects = load_objects(render(REPLICAS_VALUES, values))
                self.assertEqual(
                    one(objects, "Deployment")["spec"]["template"]["spec"][
                        "terminationGracePeriodSeconds"], 5 + 10 + expected)

    def test_log_and_memory_budget_values_are_checked(self):
        """A log format, log level or memory budget the server would refuse
        is refused by values.schema.json (as Helm checks it), before any pod
        crash-loops on it; a good one reaches the command line."""
        import jsonschema  # pylint: disable=import-outside-toplevel
        with open(os.path.join(CHART, "values.schema.json"),
                  encoding="utf-8") as f:
            schema = json.load(f)
        with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
            defaults = yaml.safe_load(f)
        validator = jsonschema.Draft7Validator(schema)
        self.assertEqual(list(validator.iter_errors(defaults)), [])
        for override in ({"log": {"format": "xml", "level": "info"}},
                         {"log": {"format": "json", "level": "verbose"}},
                         {"memoryBudget": "lots"}, {"memoryBudget": "2 GB"}):
            with self.subTest(override):
                self.assertNotEqual(
                    list(validator.iter_errors({**defaults, **override})), [])
        for good in ("", "512Mi", "1.5GiB", "1073741824"):
            self.assertEqual(list(validator.iter_errors(
                {**defaults, "memoryBudget": good})), [], good)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_values(tmp, "ok.yaml", {"memoryBudget": "1.5Gi"})
            args = one(load_objects(render(AUTH_VALUES, path)),
                       "Deployment")["spec"]["template"]["spec"][
                           "containers"][0]["args"]
        self.assertIn("--memory-budget=1.5Gi", args)
        self.assertIn("--log-format=json", args)

    def test_more_replicas_need_a_store(self):
        """With the memory store a task lives in the replica that accepted
        it: two replicas (or an autoscaler) fail the render, saying why and
        what to set."""
        with tempfile.TemporaryDirectory() as tmp:
            two = write_values(tmp, "two.yaml", {"replicaCount": 2})
            with self.assertRaises(RenderError) as failed:
                render(AUTH_VALUES, two)
            message = str(failed.exception)
            for words in ("replicaCount: at most 1 with the memory store",
                          "NOT_FOUND", "set store.existingSecret"):
                self.assertIn(words, message)
            for autoscaling in ({"enabled": True}, {"external": True}):
                with self.subTest(autoscaling):
                    path = write_values(tmp, "a.yaml",
                                        {"autoscaling": autoscaling})
                    with self.assertRaisesRegex(
                            RenderError,
                            "autoscaling needs store.existingSecret"):
                        render(AUTH_VALUES, path)
            # 0 (parked) and 1 render without a store.
            for count in (0, 1):
                path = write_values(tmp, "n.yaml", {"replicaCount": count})
                objects = load_objects(render(AUTH_VALUES, path))
                self.assertEqual(one(objects, "Deployment")["spec"][
                    "replicas"], count)

    def test_autoscaler(self):
        """autoscaling.yaml: an HPA on CPU and memory over replicas on one
        database; the Deployment leaves its replicas to it."""
        objects, _, _, _ = self.pod(AUTOSCALING_VALUES)
        spec = one(objects, "Deployment")["spec"]
        self.assertNotIn("replicas", spec, "helm upgrade would reset them")
        self.assertEqual(spec["strategy"]["type"], "RollingUpdate")
        hpa = one(objects, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["metadata"]["name"], "remex")
        self.assertEqual(hpa["spec"], {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": "remex"},
            "minReplicas": 2,
            "maxReplicas": 8,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": 75}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {
                    "type": "Utilization", "averageUtilization": 85}}},
            ],
            "behavior": {"scaleDown": {
                "stabilizationWindowSeconds": 600,
                "policies": [{"type": "Pods", "value": 1,
                              "periodSeconds": 120}]}},
        })
        self.assertEqual(one(objects, "PodDisruptionBudget")["spec"][
            "maxUnavailable"], 1)

    def test_external_autoscaler(self):
        """autoscaling.external (KEDA): no replicas field, and no HPA of the
        chart's to fight KEDA's."""
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {
                "autoscaling": {"external": True}})
            objects = load_objects(render(STORE_VALUES, values))
        self.check_common(objects)
        self.assertNotIn("replicas", one(objects, "Deployment")["spec"])
        self.assertNotIn("HorizontalPodAutoscaler", by_kind(objects))

    def test_tls_from_a_secret(self):
        objects, _, container, volumes = self.pod(TLS_VALUES)
        args = container["args"]
        self.assertEqual(flag_value(args, "--tls-cert"),
                         SECRETS_DIR + "/tls/tls.crt")
        self.assertEqual(flag_value(args, "--tls-key"),
                         SECRETS_DIR + "/tls/tls.key")
        self.assertIsNone(flag_value(args, "--tls-client-ca"))
        self.assertIsNotNone(flag_value(args, "--auth"))
        self.assertEqual(volumes["tls"]["secret"]["secretName"],
                         "remex-server-tls")
        self.assertEqual([i["key"] for i in volumes["tls"]["secret"]["items"]],
                         ["tls.crt", "tls.key"])
        self.assertNotIn("client-ca", volumes)
        self.assertNotIn("Certificate", by_kind(objects))

    def test_mtls(self):
        _, _, container, volumes = self.pod(MTLS_VALUES)
        self.assertEqual(flag_value(container["args"], "--tls-client-ca"),
                         SECRETS_DIR + "/client-ca/ca.crt")
        self.assertEqual(volumes["client-ca"]["secret"]["secretName"],
                         "remex-client-ca")
        self.assertEqual(volumes["client-ca"]["secret"]["items"],
                         [{"key": "ca.pem", "path": "ca.crt"}])

    def test_cert_manager_and_mtls_alone(self):
        objects, _, container, volumes = self.pod(CERT_MANAGER_VALUES)
        args = container["args"]
        self.assertIsNone(flag_value(args, "--auth"), "mTLS alone suffices")
        self.assertNotIn("--insecure", args)
        certificate = one(objects, "Certificate")
        self.assertEqual(certificate["apiVersion"], "cert-manager.io/v1")
        spec = certificate["spec"]
        # The Certificate writes the Secret the pod mounts.
        self.assertEqual(spec["secretName"], "remex-tls")
        self.assertEqual(volumes["tls"]["secret"]["secretName"], "remex-tls")
        self.assertEqual(spec["issuerRef"], {
            "name": "remex-ca", "kind": "ClusterIssuer",
            "group": "cert-manager.io"})
        self.assertEqual(spec["dnsNames"], [
            "remex", "remex.default", "remex.default.svc",
            "remex.default.svc.cluster.local", "remex.example.com"])
        self.assertIn("server auth", spec["usages"])
        self.assertEqual(volumes["client-ca"]["configMap"], {
            "name": "remex-client-ca",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
            "defaultMode": 0o444})
        # Restricted egress: DNS and the values' rules only.
        policy = one(objects, "NetworkPolicy")["spec"]
        self.assertEqual(policy["policyTypes"], ["Ingress", "Egress"])
        self.assertEqual([p["port"] for p in policy["egress"][0]["ports"]],
                         [53, 53])
        self.assertEqual(policy["egress"][1]["ports"],
                         [{"port": 5432, "protocol": "TCP"}])
        self.assertEqual(policy["ingress"][0]["from"], [{"namespaceSelector": {
            "matchLabels": {"remex.example.com/client": "true"}}}])

    def test_network_policy_follows_the_ports(self):
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"metrics": {
                "enabled": False}})
            objects = load_objects(render(AUTH_VALUES, values))
            off = write_values(tmp, "off.yaml", {"networkPolicy": {
                "enabled": False}})
            without = load_objects(render(AUTH_VALUES, off))
        policy = one(objects, "NetworkPolicy")["spec"]
        self.assertEqual([r["ports"][0]["port"] for r in policy["ingress"]],
                         ["grpc"], "no metrics port, no metrics rule")
        self.assertNotIn("NetworkPolicy", by_kind(without))

    def test_insecure_only_when_the_values_say_so(self):
        objects, _, container, volumes = self.pod(INSECURE_VALUES)
        self.assertEqual(container["args"][-1], "--insecure")
        self.assertNotIn("auth", volumes)
        self.assertNotIn("Secret", by_kind(objects))
        notes = render(INSECURE_VALUES, notes=True)
        self.assertIn("INSECURE", notes)

    def test_reloader_watches_what_the_server_reads(self):
        """The sidecar watches exactly the files of the server's flags,
        through the same read-only mounts, and signals the server's tini in
        the pod's shared process namespace."""
        for values in (FULL_VALUES, AUTH_SECRET_VALUES, CERT_MANAGER_VALUES):
            with self.subTest(os.path.basename(values)):
                with tempfile.TemporaryDirectory() as tmp:
                    on = write_values(tmp, "on.yaml", {"reloader": {
                        "enabled": True}})
                    objects = load_objects(render(values, on))
                self.check_common(objects)
                pod = one(objects, "Deployment")["spec"]["template"]["spec"]
                server, reloader = pod["containers"][:2]
                self.assertEqual(reloader["name"], "reloader")
                self.assertTrue(pod["shareProcessNamespace"])
                self.assertIn({"name": "TINI_SUBREAPER", "value": "1"},
                              server["env"])
                self.assertEqual(reloader["image"], server["image"])
                self.assertEqual(reloader["securityContext"],
                                 server["securityContext"])
                files = [flag_value(server["args"], f) for f in (
                    "--auth", "--tls-cert", "--tls-key", "--tls-client-ca")]
                command = reloader["command"]
                self.assertEqual(command[:2], ["/bin/sh", "-c"])
                self.assertEqual(command[4:7], [
                    "10" if values == FULL_VALUES else "30",
                    server["command"][0],
                    "--config=" + flag_value(server["args"], "--config")])
                self.assertEqual(command[7:], [f for f in files if f])
                secret_mounts = [m for m in server["volumeMounts"]
                                 if m["mountPath"].startswith(SECRETS_DIR)]
                self.assertEqual(reloader["volumeMounts"], secret_mounts)
        # Off, or nothing to watch: no sidecar, no shared namespace.
        with tempfile.TemporaryDirectory() as tmp:
            on = write_values(tmp, "on.yaml", {"reloader": {"enabled": True}})
            for objects in (Rendered.of(AUTH_VALUES)[1],
                            load_objects(render(INSECURE_VALUES, on))):
                pod = one(objects, "Deployment")["spec"]["template"]["spec"]
                self.assertEqual([c["name"] for c in pod["containers"]],
                                 ["server"])
                self.assertNotIn("shareProcessNamespace", pod)
                self.assertNotIn("env", pod["containers"][0])

    def test_metrics_off_says_so_to_the_server(self):
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"metrics": {
                "enabled": False, "serviceMonitor": {"enabled": True}}})
            objects = load_objects(render(AUTH_VALUES, values))
        container = one(objects, "Deployment")["spec"]["template"]["spec"][
            "containers"][0]
        self.assertIn("--metrics-listen=none", container["args"])
        self.assertEqual([p["name"] for p in container["ports"]], ["grpc"])
        self.assertNotIn("ServiceMonitor", by_kind(objects))

    def test_config_change_rolls_the_pod(self):
        def checksum(objects):
            return one(objects, "Deployment")["spec"]["template"]["metadata"][
                "annotations"]["checksum/config"]
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"config": {"pollers": 3}})
            changed = load_objects(render(AUTH_VALUES, values))
        self.assertNotEqual(checksum(changed),
                            checksum(Rendered.of(AUTH_VALUES)[1]))

    def test_renderer_refuses_what_the_chart_forbids(self):
        """Without the schema too (e.g. helm --skip-schema-validation)."""
        token = {"name": "a", "token_sha256": "0" * 64}
        store = {"existingSecret": "pg", "existingSecretKey": "uri"}
        cases = {
            "replicaCount": ({"replicaCount": 2}, "at most 1"),
            "an autoscaler without a store": (
                {"autoscaling": {"enabled": True}},
                "autoscaling needs store.existingSecret"),
            "KEDA without a store": (
                {"autoscaling": {"external": True}},
                "autoscaling needs store.existingSecret"),
            "two autoscalers": (
                {"store": store, "autoscaling": {"enabled": True,
                                                 "external": True}},
                "keep one"),
            "maxReplicas below minReplicas": (
                {"store": store, "autoscaling": {
                    "enabled": True, "minReplicas": 4, "maxReplicas": 3}},
                "autoscaling.maxReplicas: at least autoscaling.minReplicas"),
            "an autoscaler without a target": (
                {"store": store, "autoscaling": {
                    "enabled": True, "targetCPUUtilizationPercentage": None}},
                "targetCPUUtilizationPercentage or "
                "targetMemoryUtilizationPercentage"),
            "a CPU target without a CPU request": (
                {"store": store, "autoscaling": {"enabled": True},
                 "resources": {"requests": None}},
                "needs resources.requests.cpu"),
            "plugins": ({"plugins": {"enabled": True, "files": ["a.so"]}},
                        "plugins.volume"),
            "no auth, no mTLS": ({"auth": {"enabled": False}},
                                 OPEN_SERVER_MESSAGE),
            "principals off": ({"auth": {"principals": None}},
                               "auth.principals or auth.existingSecret"),
            "TLS alone authenticates nobody": (
                {"auth": {"enabled": False},
                 "tls": {"enabled": True, "secretName": "s"}},
                OPEN_SERVER_MESSAGE),
            "mode in other words": ({"security": {"mode": "off"}},
                                    "neither secure nor insecure"),
            "insecure with auth": ({"security": {"mode": "insecure"}},
                                   "drop security.mode: insecure"),
            "principals and a Secret": (
                {"auth": {"principals": [token], "existingSecret": "x"}},
                "not both"),
            "a token, not its hash": (
                {"auth": {"principals": [{"name": "a",
                                          "token_sha256": "secret"}]}},
                "64 lowercase hex digits"),
            "mTLS without TLS": (
                {"tls": {"clientCA": {"enabled": True, "secretName": "ca"}}},
                "tls.clientCA (mTLS) needs tls.enabled"),
            "TLS without a certificate": ({"tls": {"enabled": True}},
                                          "tls.secretName"),
            "cert-manager without an issuer": (
                {"tls": {"enabled": True, "certManager": {"enabled": True}}},
                "issuerRef.name"),
            "client CA from nowhere": (
                {"tls": {"enabled": True, "secretName": "s",
                         "clientCA": {"enabled": True}}},
                "secretName and tls.clientCA.configMapName"),
            "metrics open to all": ({"networkPolicy": {"metricsFrom": []}},
                                    "networkPolicy.metricsFrom"),
            "Secrets nobody may read": (
                {"podSecurityContext": {"fsGroup": None}},
                "keep podSecurityContext.fsGroup"),
        }
        with tempfile.TemporaryDirectory() as tmp:
            for name, (values, message) in cases.items():
                with self.subTest(name):
                    path = write_values(tmp, "case.yaml", values)
                    with self.assertRaisesRegex(RenderError, re.escape(message)):
                        render(AUTH_VALUES, path)

    def test_monitoring_files_are_required_when_switched_on(self):
        """.Files.Get of a missing file fails the render with its name (a
        chart copied without its monitoring/ files)."""
        with tempfile.TemporaryDirectory() as tmp:
            chart = os.path.join(tmp, "remex")
            shutil.copytree(CHART, chart)
            shutil.rmtree(os.path.join(chart, "monitoring"))
            for key, name in (("prometheusRule", "remex.rules.yml"),
                              ("grafanaDashboard", "remex.json")):
                with self.subTest(key):
                    values = write_values(tmp, "v.yaml", {"monitoring": {
                        key: {"enabled": True}}})
                    result = subprocess.run(
                        [RENDERER, "-chart", chart, "-f", AUTH_VALUES,
                         "-f", values],
                        capture_output=True, text=True, timeout=60,
                        check=False)
                    self.assertNotEqual(result.returncode, 0)
                    self.assertIn(name, result.stderr)

    def test_chart_is_self_contained(self):
        """No symlinks (a copy of helm/remex alone, a packaged chart or a
        parent's charts/ has everything); the monitoring files are copies
        of monitoring/, byte for byte (scripts/sync-chart-monitoring.sh
        makes them), and a copy of the chart alone renders them."""
        for directory, dirs, names in os.walk(CHART):
            for name in dirs + names:
                path = os.path.join(directory, name)
                self.assertFalse(os.path.islink(path), "symlink: " + path)
        for name in ("alerts/remex.rules.yml", "dashboards/remex.json"):
            with self.subTest(name):
                with open(os.path.join(CHART, "monitoring", name), "rb") as f:
                    copy_bytes = f.read()
                with open(os.path.join(REPO, "monitoring", name), "rb") as f:
                    self.assertEqual(copy_bytes, f.read(),
                                     "run scripts/sync-chart-monitoring.sh")
        sync = os.path.join(REPO, "scripts", "sync-chart-monitoring.sh")
        result = subprocess.run([sync, "--check"], capture_output=True,
                                text=True, timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)

        with tempfile.TemporaryDirectory() as tmp:
            alone = os.path.join(tmp, "remex")
            shutil.copytree(CHART, alone)
            values = write_values(tmp, "v.yaml", {"monitoring": {
                "prometheusRule": {"enabled": True},
                "grafanaDashboard": {"enabled": True}}})
            empty = os.path.join(tmp, "no-fallback")
            os.makedirs(empty)
            result = subprocess.run(
                [RENDERER, "-chart", alone, "-files-fallback", empty,
                 "-f", AUTH_VALUES, "-f", values],
                capture_output=True, text=True, timeout=60, check=False)
            self.assertEqual(result.returncode, 0, result.stderr)
            # --check notices a stale copy.
            stale = os.path.join(tmp, "repo")
            os.makedirs(os.path.join(stale, "scripts"))
            shutil.copy(sync, os.path.join(stale, "scripts"))
            shutil.copytree(os.path.join(REPO, "monitoring"),
                            os.path.join(stale, "monitoring"))
            shutil.copytree(CHART, os.path.join(stale, "helm", "remex"))
            with open(os.path.join(stale, "monitoring", "alerts",
                                   "remex.rules.yml"), "a",
                      encoding="utf-8") as f:
                f.write("# edited\n")
            script = os.path.join(stale, "scripts", "sync-chart-monitoring.sh")
            self.assertNotEqual(subprocess.run(
                [script, "--check"], capture_output=True, timeout=60,
                check=False).returncode, 0)
            subprocess.run([script], capture_output=True, timeout=60,
                           check=True)
            self.assertEqual(subprocess.run(
                [script, "--check"], capture_output=True, timeout=60,
                check=False).returncode, 0)
        objects = load_objects(result.stdout)
        rule = one(objects, "PrometheusRule")
        self.assertEqual(rule["spec"]["groups"], yaml.safe_load(
            files_get("monitoring/alerts/remex.rules.yml"))["groups"])

    def test_notes_show_grpcurl(self):
        notes = render(AUTH_VALUES, notes=True)
        self.assertIn("grpcurl -plaintext", notes)
        self.assertIn("-H \"authorization: Bearer $REMEX_TOKEN\"", notes)
        self.assertIn("port-forward svc/remex 50051:50051", notes)
        self.assertIn("remex.v1.Executor/Submit", notes)
        self.assertNotIn("INSECURE", notes)
        self.assertIn("helm test remex -n default", notes)
        notes = render(MTLS_VALUES, notes=True)
        self.assertNotIn("-plaintext", notes)
        self.assertIn("-cert client.crt -key client.key", notes)
        self.assertIn("-servername remex.default.svc", notes)

    def test_notes_say_where_tasks_live(self):
        """The notes name the store and the replicas, or say that with the
        memory store there is one and how to get more."""
        notes = render(AUTH_VALUES, notes=True)
        self.assertIn("One replica, and tasks live in its memory", notes)
        self.assertIn("set store.existingSecret", notes)
        notes = render(REPLICAS_VALUES, notes=True)
        self.assertIn("Tasks live in PostgreSQL (the URL from Secret "
                      "remex-postgres, key uri)", notes)
        self.assertIn("Replicas: 3 on this database", notes)
        self.assertIn("hands its queued tasks back", notes)
        notes = render(AUTOSCALING_VALUES, notes=True)
        self.assertIn("Replicas: 2 to 8 (HorizontalPodAutoscaler remex)",
                      notes)
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {
                "autoscaling": {"external": True}})
            notes = render(STORE_VALUES, values, notes=True)
        self.assertIn("Replicas: as your autoscaler sets them", notes)

    def test_readme_scales_on_real_metrics(self):
        """The KEDA ScaledObject of the chart README queries metrics that
        the server exports (monitoring/*.cc names them), summed over all
        replicas (each reports only its own queue), and targets the
        chart's Deployment."""
        exported = set()
        monitoring = os.path.join(REPO, "monitoring")
        for name in os.listdir(monitoring):
            if name.endswith(".cc"):
                with open(os.path.join(monitoring, name),
                          encoding="utf-8") as f:
                    exported |= set(re.findall(r'"(remex_[a-z_]+)"', f.read()))
        self.assertIn("remex_pool_queue_depth", exported)
        scaled = [doc for doc in readme_yaml_blocks()
                  if isinstance(doc, dict) and doc.get("kind") == "ScaledObject"]
        self.assertEqual(len(scaled), 1)
        spec = scaled[0]["spec"]
        self.assertEqual(spec["scaleTargetRef"]["name"], "remex")
        self.assertGreaterEqual(spec["minReplicaCount"], 1)
        queries = [t["metadata"]["query"] for t in spec["triggers"]
                   if t["type"] == "prometheus"]
        self.assertIn("remex_pool_queue_depth", " ".join(queries))
        for query in queries:
            with self.subTest(query):
                self.assertTrue(query.startswith("sum("), query)
                for metric in re.findall(r"\bremex_[a-z_]+", query):
                    self.assertIn(metric, exported)
        # The CloudNativePG Cluster's app Secret is what the values use.
        cluster = [doc for doc in readme_yaml_blocks()
                   if isinstance(doc, dict) and doc.get("kind") == "Cluster"]
        self.assertEqual(len(cluster), 1)
        self.assertEqual(cluster[0]["apiVersion"], "postgresql.cnpg.io/v1")
        stores = [doc["store"] for doc in readme_yaml_blocks()
                  if isinstance(doc, dict) and "store" in doc]
        self.assertIn({"existingSecret": cluster[0]["metadata"]["name"] +
                       "-app", "existingSecretKey": "uri"}, stores)

    def test_every_document_names_its_source(self):
        text, _ = Rendered.of(FULL_VALUES)
        sources = split_sources(text)
        base = os.path.join(CHART, "templates")
        templates = sorted(
            "remex/templates/" + os.path.relpath(os.path.join(d, name), base)
            for d, _, names in os.walk(base) for name in names
            if not name.startswith("_") and name != "NOTES.txt")
        self.assertEqual(sorted(sources), templates,
                         "the full options render every template")


def readme_yaml_blocks():
    """The YAML blocks of the chart README, parsed (one document each)."""
    with open(CHART_README, encoding="utf-8") as f:
        text = f.read()
    return [yaml.safe_load(block)
            for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def secret_data(secret):
    """{key: text} of a Secret's data (base64) and stringData."""
    data = {k: base64.b64decode(v).decode()
            for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    return data


def files_get(name):
    """.Files.Get as the renderer does it: the chart's file, or ""."""
    path = os.path.join(CHART, name)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    return ""


class ValuesSchemaTest(unittest.TestCase):
    """values.schema.json, as Helm applies it to the merged values."""

    @classmethod
    def setUpClass(cls):
        import jsonschema  # pylint: disable=import-outside-toplevel
        with open(os.path.join(CHART, "values.schema.json"),
                  encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft7Validator.check_schema(schema)
        cls.validator = jsonschema.Draft7Validator(schema)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def merged(self, *value_files):
        """The merged values, as Helm hands them to the schema: before the
        templates run (the bare defaults pass the schema, then fail the
        render: the schema checks shapes, the templates say what is
        missing)."""
        path = os.path.join(self.tmp.name, "merged.json")
        if os.path.exists(path):
            os.unlink(path)
        try:
            render(*value_files, values_json=path)
        except RenderError:
            if value_files:
                raise
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def errors(self, values):
        return [("/".join(str(p) for p in e.absolute_path), e.message)
                for e in self.validator.iter_errors(values)]

    def test_good_values(self):
        readme = os.path.join(self.tmp.name, "my-values.yaml")
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
            example = re.search(r"```yaml\n(# my-values.yaml.*?)```", f.read(),
                                re.S)
        self.assertIsNotNone(example, "README.md: the my-values.yaml example")
        with open(readme, "w", encoding="utf-8") as f:
            f.write(example.group(1))
        for files in [()] + list(CASES.values()) + [(readme,)]:
            with self.subTest(files=files):
                self.assertEqual(self.errors(self.merged(*files)), [])
        # Many replicas, or an autoscaler, on a store; global (a parent
        # chart's values, when this one is a subchart).
        store = {"existingSecret": "pg", "existingSecretKey": "uri"}
        for override in ({"store": store, "replicaCount": 50},
                         {"store": store, "autoscaling": {"external": True}},
                         {"store": store, "autoscaling": {
                             "enabled": True,
                             "targetCPUUtilizationPercentage": None,
                             "targetMemoryUtilizationPercentage": 80}},
                         {"replicaCount": 0},
                         {"global": {"imageRegistry": "r.example.com"}}):
            with self.subTest(override=override):
                values = self.merged()
                merge(values, override)
                self.assertEqual(self.errors(values), [])

    def test_chart_readme_values(self):
        """Every values example of the chart README (the YAML blocks that
        are not Kubernetes objects nor a client's pod spec) passes the
        schema over the defaults."""
        checked = 0
        for doc in readme_yaml_blocks():
            if not isinstance(doc, dict) or "apiVersion" in doc or "env" in doc:
                continue
            with self.subTest(doc=doc):
                values = self.merged()
                merge(values, doc)
                self.assertEqual(self.errors(values), [])
                checked += 1
        self.assertGreaterEqual(checked, 10)

    def test_bad_values(self):
        base = self.merged()
        pool = base["config"]["pools"][0]
        store = {"existingSecret": "pg", "existingSecretKey": "uri"}
        cases = [
            ("typo at the top", {"replicaCont": 1}, ""),
            ("an autoscaler without a store",
             {"autoscaling": {"enabled": True}}, "autoscaling/enabled"),
            ("KEDA without a store", {"autoscaling": {"external": True}},
             "autoscaling/external"),
            ("two autoscalers", {"store": store, "autoscaling": {
                "enabled": True, "external": True}}, "autoscaling/external"),
            ("an autoscaler without a target", {"store": store, "autoscaling": {
                "enabled": True, "targetCPUUtilizationPercentage": None}},
             "autoscaling"),
            ("a target of 0 %", {"autoscaling": {
                "targetCPUUtilizationPercentage": 0}},
             "autoscaling/targetCPUUtilizationPercentage"),
            ("no replicas at least", {"autoscaling": {"minReplicas": 0}},
             "autoscaling/minReplicas"),
            ("typo in autoscaling", {"autoscaling": {"maxReplica": 3}},
             "autoscaling"),
            ("two replicas", {"replicaCount": 2}, "replicaCount"),
            ("negative replicas", {"store": store, "replicaCount": -1},
             "replicaCount"),
            ("store margin below 5 s",
             {"shutdown": {"storeExtraSeconds": 1}},
             "shutdown/storeExtraSeconds"),
            ("bad lease", {"config": {"replica_lease": "ten seconds"}},
             "config/replica_lease"),
            ("one replica name for all", {"config": {"replica_name": "a"}},
             "config"),
            ("replicas as text", {"replicaCount": "1"}, "replicaCount"),
            ("typo in config", {"config": {"pool": []}}, "config"),
            ("shutdown_grace in config", {"config": {"shutdown_grace": "5s"}},
             "config"),
            ("typo in a pool",
             {"config": {"pools": [dict(pool, worker=4)]}}, "config/pools/0"),
            ("no workers", {"config": {"pools": [dict(pool, workers=0)]}},
             "config/pools/0/workers"),
            ("too many workers",
             {"config": {"pools": [dict(pool, workers=4097)]}},
             "config/pools/0/workers"),
            ("unknown pool kind",
             {"config": {"pools": [dict(pool, kind="fiber")]}},
             "config/pools/0/kind"),
            ("process limit on a thread pool",
             {"config": {"pools": [dict(pool, memory_limit_bytes=1 << 30)]}},
             "config/pools/0"),
            ("no pools", {"config": {"pools": []}}, "config/pools"),
            ("bad duration", {"config": {"retention": {"ttl": "ten minutes"}}},
             "config/retention/ttl"),
            ("negative ttl", {"config": {"retention": {"ttl": -1}}},
             "config/retention/ttl"),
            ("port out of range", {"service": {"port": 70000}},
             "service/port"),
            ("grace margin below 3 s", {"shutdown": {"extraSeconds": 1}},
             "shutdown/extraSeconds"),
            ("unknown service type", {"service": {"type": "Ingress"}},
             "service/type"),
            ("plugins without files",
             {"plugins": {"enabled": True,
                          "volume": {"emptyDir": {}}}}, "plugins/files"),
            ("plugin with a path", {"plugins": {"files": ["../x.so"]}},
             "plugins/files/0"),
            ("bad quantity", {"resources": {"limits": {"memory": "1 GB"}}},
             "resources/limits/memory"),
            ("liveness successThreshold",
             {"probes": {"liveness": {"successThreshold": 2}}},
             "probes/liveness/successThreshold"),
            ("digest", {"image": {"digest": "latest"}}, "image/digest"),
            ("typo in metrics", {"metrics": {"serviceMonitor": {"enable": True}}},
             "metrics/serviceMonitor"),
            ("insecure in other words", {"security": {"mode": "open"}},
             "security/mode"),
            ("insecure as a boolean", {"security": {"insecure": True}},
             "security"),
            ("a token, not its hash", {"auth": {"principals": [
                {"name": "a", "token_sha256": "remex-test-token-alice"}]}},
             "auth/principals/0/token_sha256"),
            ("an unknown role", {"auth": {"principals": [
                {"name": "a", "roles": ["root"]}]}},
             "auth/principals/0/roles/0"),
            ("typo in a principal", {"auth": {"principals": [
                {"name": "a", "token": "x"}]}}, "auth/principals/0"),
            ("auth on, no principals", {"auth": {"enabled": True}}, "auth"),
            ("principals and a Secret", {"auth": {
                "enabled": True, "principals": [{"name": "a"}],
                "existingSecret": "s"}}, "auth"),
            ("mTLS without TLS", {"tls": {"clientCA": {
                "enabled": True, "secretName": "ca"}}},
             "tls/clientCA/enabled"),
            ("TLS without a certificate", {"tls": {"enabled": True}},
             "tls/secretName"),
            ("cert-manager without an issuer", {"tls": {
                "enabled": True, "certManager": {"enabled": True}}},
             "tls/certManager/issuerRef/name"),
            ("client CA from two places", {"tls": {
                "enabled": True, "secretName": "s", "clientCA": {
                    "enabled": True, "secretName": "a",
                    "configMapName": "b"}}}, "tls/clientCA"),
            ("a peer with a typo", {"networkPolicy": {"grpcFrom": [
                {"podSelectors": {}}]}}, "networkPolicy/grpcFrom/0"),
        ]
        for name, override, where in cases:
            with self.subTest(name):
                values = copy.deepcopy(base)
                merge(values, override)
                errors = self.errors(values)
                self.assertTrue(errors, "%s: accepted" % name)
                self.assertTrue(any(path == where for path, _ in errors),
                                "%s: errors %s, none at %r" %
                                (name, errors, where))


def merge(dst, src):
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value)
        else:
            dst[key] = value


class KubernetesSchemaTest(unittest.TestCase):
    """Every rendered object against the Kubernetes object schemas."""

    def validate(self, objects):
        with tempfile.NamedTemporaryFile("w", suffix=".json",
                                         delete=False) as f:
            json.dump(objects, f)
        try:
            env = dict(os.environ, NODE_PATH=NODE_MODULES)
            return subprocess.run(["node", VALIDATE_JS, f.name], env=env,
                                  capture_output=True, text=True, timeout=120,
                                  check=False)
        finally:
            os.unlink(f.name)

    def test_rendered_objects_are_valid(self):
        objects = []
        for files in CASES.values():
            objects += Rendered.of(*files)[1]
        result = self.validate(objects)
        sys.stdout.write(result.stdout)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.count("valid "), len(objects))

    def test_invalid_objects_are_caught(self):
        """The validator is not a no-op: each broken object fails it."""
        _, objects = Rendered.of(FULL_VALUES)
        broken = {}
        deployment = copy.deepcopy(one(objects, "Deployment"))
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0][
            "containerPort"] = "grpc"
        broken["port-type"] = deployment
        monitor = copy.deepcopy(one(objects, "ServiceMonitor"))
        monitor["spec"]["endpoints"] = "metrics"
        broken["monitor-endpoints"] = monitor
        broken["unknown-kind"] = {"apiVersion": "example.com/v1",
                                  "kind": "Gadget", "metadata": {}}
        # A misspelt field: the API server would drop it, and with it the
        # read-only root.
        typo = copy.deepcopy(one(objects, "Deployment"))
        security = typo["spec"]["template"]["spec"]["containers"][0][
            "securityContext"]
        security["readOnlyRootFileSystem"] = security.pop(
            "readOnlyRootFilesystem")
        broken["field-typo"] = typo
        hpa = copy.deepcopy(one(objects, "HorizontalPodAutoscaler"))
        hpa["spec"]["maxReplica"] = hpa["spec"].pop("maxReplicas")
        broken["hpa-typo"] = hpa
        for name, obj in broken.items():
            obj["metadata"]["name"] = name
        result = self.validate(list(broken.values()))
        self.assertNotEqual(result.returncode, 0, result.stdout)
        for name in broken:
            with self.subTest(name):
                self.assertRegex(result.stdout,
                                 r"(?m)^(INVALID|unknown kind) .* %s\b" % name)
        self.assertIn("readOnlyRootFileSystem", result.stdout)
        self.assertNotIn("valid ", result.stdout.replace("INVALID ", ""))


class YamllintTest(unittest.TestCase):
    """yamllint on the chart's YAML and on every rendered manifest."""

    def yamllint(self, paths):
        return subprocess.run(
            ["yamllint", "--strict", "-c", YAMLLINT_CONFIG] + paths,
            capture_output=True, text=True, timeout=120, check=False)

    def test_chart_and_rendered_manifests(self):
        paths = [os.path.join(CHART, "Chart.yaml"),
                 os.path.join(CHART, "values.yaml")]
        paths += [os.path.join(VALUES_DIR, n) for n in os.listdir(VALUES_DIR)]
        paths.append(YAMLLINT_CONFIG)
        with tempfile.TemporaryDirectory() as tmp:
            for label, files in CASES.items():
                text, _ = Rendered.of(*files)
                for source, docs in split_sources(text).items():
                    path = os.path.join(tmp, label, os.path.basename(source))
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w", encoding="utf-8") as f:
                        f.write("---\n" + "---\n".join(docs))
                    paths.append(path)
            result = self.yamllint(paths)
            self.assertEqual(result.returncode, 0, result.stdout)

            bad = os.path.join(tmp, "bad.yaml")
            with open(bad, "w", encoding="utf-8") as f:
                f.write("---\na: 1\na: 2\nb:   [1,2]   \n")
            self.assertNotEqual(self.yamllint([bad]).returncode, 0)


class ServerProcess:
    """A process (remex-server, or the reloader sidecar's script) started
    with a given command line; its output read line by line."""

    def __init__(self, command, cwd,
                 ready=r"(?<!metrics )listening on (\S+:\d+)"):
        print("starting: %s" % " ".join(command))
        # TINI_SUBREAPER: tini reaps orphans here as it does as PID 1. A
        # session of its own: kill() ends the server under tini too.
        self.process = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
            env=dict(os.environ, TINI_SUBREAPER="1"))
        self.lines = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        self.address = self.wait_for(ready)

    def _pump(self):
        for line in self.process.stdout:
            sys.stdout.write("[server] " + line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                line = self.lines.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no line matching %r" % pattern) from None
            if line is None:
                raise AssertionError("remex-server exited (%s) before %r" %
                                     (self.process.wait(), pattern))
            match = re.search(pattern, line)
            if match:
                return match.group(1)

    def _session(self):
        """Pids of the live processes of the session this started (its
        pid): tini, the server and their children. tini moves the server to
        a process group of its own, so the group alone would miss it."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # After the name: state, ppid, pgrp, session.
            if int(fields[3]) == self.process.pid and fields[0] != "Z":
                pids.append(int(entry))
        return pids

    def kill(self):
        """SIGKILL to every process of the session this started: tini, the
        server under it (even if tini has exited) and their children, not
        only tini (which would leave the server running, holding the output
        pipe open)."""
        for pid in self._session():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self.pump.join(timeout=10)  # Reads to the end of the output.
        if not self.pump.is_alive():
            self.process.stdout.close()


def make_certificates(directory):
    """With openssl: a CA, a server certificate for localhost and
    127.0.0.1, and client certificates with CN ci-runner and alice, all
    signed by the CA. Returns {name: {"crt": pem, "key": pem}} ("ca" too)."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, timeout=60,
                       capture_output=True)

    def path(name, ext):
        return os.path.join(directory, "%s.%s" % (name, ext))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", path("ca", "key"),
            "-out", path("ca", "crt"), "-days", "2", "-subj",
            "/CN=remex test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    extensions = {
        "server": "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                  "extendedKeyUsage=serverAuth\n",
        "ci-runner": "extendedKeyUsage=clientAuth\n",
        "alice": "extendedKeyUsage=clientAuth\n",
    }
    for serial, (name, extension) in enumerate(extensions.items(), 1):
        with open(path(name, "ext"), "w", encoding="utf-8") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n" + extension)
        openssl("req", *ec, "-keyout", path(name, "key"),
                "-out", path(name, "csr"), "-subj", "/CN=" + name)
        openssl("x509", "-req", "-in", path(name, "csr"),
                "-CA", path("ca", "crt"), "-CAkey", path("ca", "key"),
                "-set_serial", str(1000 + serial), "-days", "2",
                "-extfile", path(name, "ext"), "-out", path(name, "crt"))
    result = {}
    for name in ["ca"] + list(extensions):
        result[name] = {}
        for ext in ("crt", "key"):
            with open(path(name, ext), encoding="utf-8") as f:
                result[name][ext] = f.read()
    return result


class ServerRunTest(unittest.TestCase):
    """The real server with the rendered Deployment's command line and
    ConfigMap, the Secrets written where the pod mounts them.

    Every case here needs a remex-server that has --auth, --tls-cert,
    --tls-key, --tls-client-ca and --insecure (design.md, Security)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.messages = compile_protos(cls.tmp.name)
        certificates = os.path.join(cls.tmp.name, "certificates")
        os.makedirs(certificates)
        cls.certs = make_certificates(certificates)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def server_tls_secret(self):
        """A kubernetes.io/tls Secret as cert-manager writes it."""
        return {"tls.crt": self.certs["server"]["crt"],
                "tls.key": self.certs["server"]["key"],
                "ca.crt": self.certs["ca"]["crt"]}

    def client_tls(self, client=None):
        """Channel TLS settings: trust the CA; show client's certificate."""
        tls = {"ca": self.certs["ca"]["crt"]}
        if client:
            tls.update(cert=self.certs[client]["crt"],
                       key=self.certs[client]["key"])
        return tls

    def pod_command(self, objects, workdir, provided=None):
        """The Deployment's command line, runnable here: the files of the
        ConfigMaps and Secrets it mounts (the rendered ones, and those of
        `provided`, {(kind, name): {key: text}}, that the operator or
        cert-manager would make) written under workdir where the pod mounts
        them, the listen addresses on 127.0.0.1 port 0, the built binary."""
        deployment = one(objects, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        sources = {}
        for obj in objects:
            if obj["kind"] == "ConfigMap":
                sources[("ConfigMap", obj["metadata"]["name"])] = obj["data"]
            elif obj["kind"] == "Secret":
                sources[("Secret", obj["metadata"]["name"])] = secret_data(obj)
        sources.update(provided or {})
        volumes = {v["name"]: v for v in pod["volumes"]}
        moved = {}
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                ref = volume["configMap"]
                source = ("ConfigMap", ref["name"])
            elif "secret" in volume:
                ref = volume["secret"]
                source = ("Secret", ref["secretName"])
            else:
                continue
            self.assertIn(source, sources, "the pod mounts %s %s" % source)
            data = sources[source]
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            local = os.path.join(workdir, mount["name"])
            os.makedirs(local)
            for item in items:
                self.assertIn(item["key"], data, source)
                with open(os.path.join(local, item["path"]), "w",
                          encoding="utf-8") as f:
                    f.write(data[item["key"]])
            moved[mount["mountPath"]] = local
        self.assertTrue(moved, "the pod mounts no ConfigMap")

        args = []
        for arg in container["args"]:
            name, _, value = arg.partition("=")
            if name in ("--listen", "--metrics-listen") and value != "none":
                arg = name + "=127.0.0.1:0"
            for mount_path, local in moved.items():
                arg = arg.replace(mount_path + "/", local + "/")
            args.append(arg)
        # The image's binary is the one built here; an init before it (tini)
        # runs as it is when this machine has it.
        command = container["command"]
        binary = [os.path.basename(c) for c in command].index("remex-server")
        init = command[:binary]
        if init and not os.access(init[0], os.X_OK):
            print("NOTE: %s dropped: not installed here" % " ".join(init))
            init = []
        self.moved = moved
        return init + [SERVER] + command[binary + 1:] + args, container, pod

    def start(self, objects, provided=None):
        workdir = tempfile.mkdtemp(dir=self.tmp.name)
        command, container, pod = self.pod_command(objects, workdir, provided)
        server = ServerProcess(command, cwd=workdir)
        self.addCleanup(server.kill)
        server.command = command
        server.moved = self.moved
        with open(flag_value(command, "--config"), encoding="utf-8") as f:
            server.config = yaml.safe_load(f)
        return server, container, pod

    def assert_refused(self, server, code, **channel):
        import grpc  # pylint: disable=import-outside-toplevel
        with Channel(server.address, self.messages, **channel) as c:
            with self.assertRaises(grpc.RpcError) as refused:
                c.submit("echo", {"x": 1})
        self.assertEqual(refused.exception.code().name, code, channel)

    def run_helm_test(self, objects, address):
        """The helm test hook's command, run here against ADDRESS instead
        of the Service (the image's bash is Debian's, as here)."""
        command = one(objects, "Pod")["spec"]["containers"][0]["command"]
        host, port = address.rsplit(":", 1)
        command = command[:4] + [host, port] + command[6:]
        return subprocess.run(command, capture_output=True, text=True,
                              timeout=60, check=False)

    def test_tokens_from_values(self):
        _, objects = Rendered.of(AUTH_VALUES)
        server, container, pod = self.start(objects)
        self.check_serves(server, container, token=TOKENS["alice"])
        # helm test: health is answered without a token.
        result = self.run_helm_test(objects, server.address)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SERVING", result.stdout)
        # No token, or one whose hash is not in the Secret: refused.
        self.assert_refused(server, "UNAUTHENTICATED")
        self.assert_refused(server, "UNAUTHENTICATED", token="not-a-token")
        # bob's roles ([read]) came through the Secret: he may not submit.
        self.assert_refused(server, "PERMISSION_DENIED", token=TOKENS["bob"])
        self.assert_stops(server, pod, container)

    def test_insecure_values(self):
        _, objects = Rendered.of(INSECURE_VALUES)
        server, container, pod = self.start(objects)
        self.check_serves(server, container)
        result = self.run_helm_test(objects, server.address)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SERVING", result.stdout)
        self.assert_stops(server, pod, container)
        # Once the server is gone, helm test fails.
        result = self.run_helm_test(objects, server.address)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("FAIL", result.stdout)

    def test_helm_test_fails_on_a_health_service_the_server_lacks(self):
        with tempfile.TemporaryDirectory() as tmp:
            values = write_values(tmp, "v.yaml", {"probes": {
                "grpcService": "no.such.Service"}})
            objects = load_objects(render(INSECURE_VALUES, values))
        server, _, _ = self.start(objects)
        result = self.run_helm_test(objects, server.address)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("health of no.such.Service", result.stdout)

    def test_tls_and_tokens(self):
        _, objects = Rendered.of(TLS_VALUES)
        server, container, pod = self.start(objects, {
            ("Secret", "remex-server-tls"): self.server_tls_secret()})
        self.check_serves(server, container, token=TOKENS["alice"],
                          tls=self.client_tls())
        self.assert_refused(server, "UNAVAILABLE", token=TOKENS["alice"])
        self.assert_refused(server, "UNAUTHENTICATED", tls=self.client_tls())
        # helm test with TLS: the image has no TLS client, only the TCP
        # connection is checked.
        result = self.run_helm_test(objects, server.address)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("accepts connections", result.stdout)
        self.assert_stops(server, pod, container)

    def test_mtls(self):
        """mtls.yaml (CA from a Secret, principals from a Secret) and
        cert-manager.yaml (the Secret cert-manager writes, the CA from a
        ConfigMap, no auth file)."""
        auth_file = yaml.safe_dump({"principals": [
            {"name": "ci-runner", "roles": ["submit", "read"]}]})
        cases = {
            MTLS_VALUES: {
                ("Secret", "remex-server-tls"): self.server_tls_secret(),
                ("Secret", "remex-client-ca"): {
                    "ca.pem": self.certs["ca"]["crt"]},
                ("Secret", "remex-principals"): {"auth.yaml": auth_file},
            },
            CERT_MANAGER_VALUES: {
                ("Secret", "remex-tls"): self.server_tls_secret(),
                ("ConfigMap", "remex-client-ca"): {
                    "ca.crt": self.certs["ca"]["crt"]},
            },
        }
        for values, provided in cases.items():
            with self.subTest(os.path.basename(values)):
                _, objects = Rendered.of(values)
                server, container, pod = self.start(objects, provided)
                self.check_serves(server, container,
                                  tls=self.client_tls("ci-runner"))
                # A TLS client without a certificate: the handshake fails.
                self.assert_refused(server, "UNAVAILABLE",
                                    tls=self.client_tls())
                self.assert_stops(server, pod, container)

    def test_sighup_through_tini_rereads_the_auth_secret(self):
        """What the README tells operators: after the Secret changes (the
        kubelet rewrites the mounted file), SIGHUP to PID 1 (tini) reaches
        the server, which then takes the new principals."""
        _, objects = Rendered.of(AUTH_SECRET_VALUES)
        old = yaml.safe_dump({"principals": [{
            "name": "alice", "token_sha256": sha256_hex(TOKENS["alice"])}]})
        server, _, _ = self.start(objects, {("Secret", "remex-principals"): {
            "remex-auth.yaml": old}})
        with Channel(server.address, self.messages,
                     token=TOKENS["bob"]) as channel:
            import grpc  # pylint: disable=import-outside-toplevel
            with self.assertRaises(grpc.RpcError):
                channel.submit("echo", {"x": 1})
        new = yaml.safe_dump({"principals": [{
            "name": "bob", "token_sha256": sha256_hex(TOKENS["bob"])}]})
        path = flag_value(server.command, "--auth")
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(path + ".new", path)  # Atomic, as the kubelet's swap.
        self.assertEqual(os.path.basename(server.command[0]),
                         "tini" if os.access("/usr/bin/tini", os.X_OK)
                         else "remex-server")
        server.process.send_signal(signal.SIGHUP)
        self.wait_until_accepted(server, TOKENS["bob"])
        self.assert_refused(server, "UNAUTHENTICATED", token=TOKENS["alice"])
        self.assertIsNone(server.process.poll(), "SIGHUP must not stop it")

    def test_reloader_sidecar_signals_the_server(self):
        """The rendered reloader's own command, run here against the server
        started under tini (its paths moved as the server's are): it sees
        the auth file change, sends SIGHUP to tini, which forwards it, and
        the server takes the new principals."""
        if not os.access("/usr/bin/tini", os.X_OK):
            self.skipTest("tini is not installed here")
        with tempfile.TemporaryDirectory() as tmp:
            on = write_values(tmp, "on.yaml", {"reloader": {
                "enabled": True, "intervalSeconds": 1}})
            objects = load_objects(render(AUTH_SECRET_VALUES, on))
        old = yaml.safe_dump({"principals": [{
            "name": "alice", "token_sha256": sha256_hex(TOKENS["alice"])}]})
        server, _, pod = self.start(objects, {
            ("Secret", "remex-principals"): {"remex-auth.yaml": old}})
        command = []
        for arg in pod["containers"][1]["command"]:
            for mount_path, local in server.moved.items():
                arg = arg.replace(mount_path + "/", local + "/")
            command.append(arg)
        reloader = ServerProcess(command, cwd=self.tmp.name,
                                 ready=r"reloader: (watching) ")
        self.addCleanup(reloader.kill)
        self.assert_refused(server, "UNAUTHENTICATED", token=TOKENS["bob"])

        new = yaml.safe_dump({"principals": [{
            "name": "bob", "token_sha256": sha256_hex(TOKENS["bob"])}]})
        path = flag_value(server.command, "--auth")
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.write(new)
        os.replace(path + ".new", path)
        signalled = reloader.wait_for(r"SIGHUP to \S+ \(pid (\d+)\)")
        self.assertEqual(int(signalled), server.process.pid, "tini's pid")
        self.wait_until_accepted(server, TOKENS["bob"])
        self.assertIsNone(server.process.poll(), "SIGHUP must not stop it")

    def wait_until_accepted(self, server, token):
        deadline = time.monotonic() + RPC_TIMEOUT_S
        while True:
            try:
                with Channel(server.address, self.messages,
                             token=token) as channel:
                    channel.submit("echo", {"x": 1})
                return
            except Exception:  # pylint: disable=broad-except
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def test_server_run_values_drain_within_the_pod_grace(self):
        _, objects = Rendered.of(SERVER_RUN_VALUES)
        server, container, pod = self.start(objects)
        token = TOKENS["alice"]
        self.check_serves(server, container, token=token)

        # A running task outlives the drain grace: it ends CANCELLED after
        # --shutdown-grace, and the server exits 0 well within the pod's
        # terminationGracePeriodSeconds (minus the preStop pause).
        with Channel(server.address, self.messages, token=token) as channel:
            task = channel.submit("sleep", {"ms": 120000})
            awaited = {}
            waiter = threading.Thread(target=lambda: awaited.update(
                channel.await_task(task.id, timeout_s=60)))
            waiter.start()
            channel.wait_until_running(task.id)
            grace = go_duration_seconds(
                flag_value(container["args"], "--shutdown-grace"))
            drain = self.assert_stops(server, pod, container)
            waiter.join(timeout=30)
            self.assertEqual(awaited.get("state"), "CANCELLED", awaited)
        self.assertGreaterEqual(drain, grace * 0.9)

    def check_serves(self, server, container, token=None, tls=None):
        # What the kubelet's probes ask: gRPC health with no token (and no
        # TLS: the chart uses gRPC probes only without TLS), or a TCP
        # connection.
        for probe in ("livenessProbe", "readinessProbe"):
            if "grpc" in container[probe]:
                self.assertIsNone(tls, "a gRPC probe on a TLS port")
                with Channel(server.address, self.messages) as channel:
                    service = container[probe]["grpc"].get("service", "")
                    self.assertEqual(channel.health(service), "SERVING",
                                     probe)
            else:
                host, port = server.address.rsplit(":", 1)
                socket.create_connection((host, int(port)),
                                         timeout=RPC_TIMEOUT_S).close()
        with Channel(server.address, self.messages, token=token,
                     tls=tls) as channel:
            self.assertEqual(channel.health(""), "SERVING")
            # The server runs the ConfigMap's pools.
            served = {p.name: p for p in channel.list_functions().pools}
            self.assertEqual(sorted(served),
                             sorted(p["name"] for p in server.config["pools"]))
            for pool in server.config["pools"]:
                for key in ("kind", "workers", "max_queue"):
                    if key in pool:
                        self.assertEqual(getattr(served[pool["name"]], key),
                                         pool[key], (pool["name"], key))
            task = channel.submit("echo", {"x": 1})
            done = channel.await_task(task.id, timeout_s=10)
            self.assertEqual(done["state"], "SUCCEEDED")
            self.assertEqual(done["result"], {"x": 1})
        if flag_value(container["args"], "--metrics-listen") not in (
                None, "none"):
            address = server.wait_for(r"metrics listening on (\S+:\d+)")
            with urllib.request.urlopen("http://%s/metrics" % address,
                                        timeout=RPC_TIMEOUT_S) as answer:
                self.assertEqual(answer.status, 200)
                self.assertIn("remex_", answer.read().decode())

    def assert_stops(self, server, pod, container):
        """SIGTERM (after the preStop pause in a pod); exit 0 in time."""
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        budget = pod["terminationGracePeriodSeconds"] - pre_stop
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=budget + 30)
        took = time.monotonic() - started
        self.assertEqual(code, 0)
        self.assertLess(took, budget, "the kubelet would SIGKILL it")
        return took


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


class ImageTest(unittest.TestCase):
    """The Dockerfile, without a Docker engine: its runtime packages hold
    every shared library remex-server links, and its user, paths and init
    are the ones the chart's Deployment uses."""

    @classmethod
    def setUpClass(cls):
        with open(DOCKERFILE, encoding="utf-8") as f:
            cls.dockerfile = f.read()
        with open(RUNTIME_PACKAGES, encoding="utf-8") as f:
            cls.runtime = [line.split("#")[0].strip() for line in f
                           if line.split("#")[0].strip()]
        cls.closure = dependency_closure(cls.runtime)

    def instructions(self):
        """(stage index, INSTRUCTION, arguments), continuation lines joined."""
        text = re.sub(r"\\\n", " ", self.dockerfile)
        stage = -1
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word.upper() == "FROM":
                stage += 1
            yield stage, word.upper(), rest.strip()

    def test_runtime_packages_hold_every_shared_library(self):
        libraries = shared_libraries(SERVER)
        self.assertGreater(len(libraries), 5)
        if any("libasan" in library for library in libraries):
            self.skipTest("a sanitizer build (REMEX_SANITIZE): the image "
                          "never ships one")
        owners = owning_packages(libraries)
        for library in libraries:
            with self.subTest(library):
                package = owners[library]
                self.assertIn(package, self.closure,
                              "%s is in %s: add it to %s" %
                              (library, package, RUNTIME_PACKAGES))

    def test_runtime_packages_are_runtime_packages(self):
        for package in self.runtime:
            with self.subTest(package):
                self.assertFalse(package.endswith("-dev"))
        out = subprocess.run(["apt-cache", "show", "--no-all-versions"] +
                             self.runtime, capture_output=True, text=True,
                             timeout=60, check=False).stdout
        known = set(re.findall(r"(?m)^Package: (\S+)$", out))
        self.assertEqual(sorted(set(self.runtime) - known), [],
                         "not Debian packages")

    def test_stages_run_the_repository_scripts(self):
        runs = {}
        froms = []
        for stage, word, rest in self.instructions():
            if word == "RUN":
                runs.setdefault(stage, []).append(rest)
            if word == "FROM":
                froms.append(rest.split()[0])
        self.assertEqual(len(froms), 2)
        self.assertTrue(all(f.startswith("debian:12") for f in froms), froms)
        build = " ".join(runs[0])
        self.assertIn("./scripts/install-deps.sh --build-only", build)
        self.assertIn("./scripts/build.sh", build)
        self.assertIn("install-deps.sh --runtime", " ".join(runs[1]))

    def test_image_matches_the_chart(self):
        _, objects = Rendered.of(AUTH_VALUES)
        pod = one(objects, "Deployment")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        user = [rest for stage, word, rest in self.instructions()
                if word == "USER" and stage == 1]
        self.assertEqual(user, ["%d:%d" % (pod["securityContext"]["runAsUser"],
                                           pod["securityContext"]["runAsGroup"])])
        entrypoint = [json.loads(rest) for stage, word, rest
                      in self.instructions() if word == "ENTRYPOINT"]
        self.assertEqual(entrypoint, [container["command"]])
        copies = [rest.split() for stage, word, rest in self.instructions()
                  if word == "COPY" and rest.startswith("--from=build")]
        self.assertEqual([c[-1] for c in copies], [container["command"][-1]])
        # Every program the pod runs comes from a runtime package or from
        # the base image's essential packages (the preStop sleep).
        programs = container["command"][:1] + [
            container["lifecycle"]["preStop"]["exec"]["command"][0]]
        # The reloader sidecar runs the same image: its shell and the
        # coreutils its script calls.
        reloader = one(Rendered.of(FULL_VALUES)[1], "Deployment")["spec"][
            "template"]["spec"]["containers"][1]
        self.assertEqual(reloader["name"], "reloader")
        script = reloader["command"][2]
        programs.append(reloader["command"][0])
        for tool in ("cat", "sha256sum", "sleep", "tr"):
            self.assertRegex(script, r"\b%s\b" % tool)
            programs.append(shutil.which(tool))
        owners = owning_packages(programs)
        for program in programs:
            with self.subTest(program):
                package = owners[program]
                self.assertTrue(package in self.closure or is_essential(package),
                                "%s (%s) is not in the runtime image" %
                                (program, package))


def shared_libraries(binary):
    """The absolute paths ldd resolves for a binary (not the loader)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    if "not found" in out:
        raise AssertionError("ldd: a library is not found:\n" + out)
    return sorted(set(re.findall(r"=> (/\S+)", out)))


def owning_packages(paths):
    """{path: Debian package} (one dpkg-query call), trying each path's
    /usr-merged spellings; a path no package holds fails."""
    spellings = {}
    for path in paths:
        for candidate in (path, os.path.realpath(path)):
            other = (candidate[len("/usr"):] if candidate.startswith("/usr/")
                     else "/usr" + candidate)
            for spelling in (candidate, other):
                spellings.setdefault(spelling, set()).add(path)
    out = subprocess.run(["dpkg-query", "-S"] + sorted(spellings),
                         capture_output=True, text=True, timeout=60,
                         check=False).stdout
    owners = {}
    for line in out.splitlines():
        package, _, spelling = line.partition(": ")
        for path in spellings.get(spelling.strip(), ()):
            owners[path] = package.split(",")[0].split(":")[0].strip()
    missing = sorted(set(paths) - set(owners))
    if missing:
        raise AssertionError("no Debian package holds %s" % missing)
    return owners


def installed_packages():
    """{package: (essential, [[alternative, ...] per dependency])} of the
    packages installed here (one dpkg-query call)."""
    out = subprocess.run(
        ["dpkg-query", "-W",
         "-f=${Package}\\t${db:Status-Abbrev}\\t${Essential}\\t"
         "${Pre-Depends}, ${Depends}\\n"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    packages = {}
    for line in out.splitlines():
        name, status, essential, depends = line.split("\t")
        if not status.startswith("ii"):
            continue
        clauses = [[a.strip().split(" ")[0].split(":")[0]
                    for a in clause.split("|")]
                   for clause in depends.split(",") if clause.strip()]
        packages[name] = (essential == "yes", clauses)
    return packages


INSTALLED = None


def is_essential(package):
    return INSTALLED[package][0] if package in INSTALLED else False


def dependency_closure(packages):
    """The packages and everything they (Pre-)Depend on, as installed here
    (of alternatives "a | b", the first one installed)."""
    global INSTALLED
    if INSTALLED is None:
        INSTALLED = installed_packages()
    seen = set()
    todo = list(packages)
    while todo:
        package = todo.pop()
        if package in seen or package not in INSTALLED:
            continue
        seen.add(package)
        for alternatives in INSTALLED[package][1]:
            todo.extend([a for a in alternatives if a in INSTALLED][:1])
    return seen


class Channel:
    """A gRPC channel with the few calls the tests need."""

    def __init__(self, address, messages, token=None, tls=None):
        """token: sent as "authorization: Bearer TOKEN"; tls: {"ca": PEM,
        and "cert", "key" PEM for a client certificate} (the test
        certificates name localhost)."""
        import grpc  # pylint: disable=import-outside-toplevel
        self.grpc = grpc
        if tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls["ca"].encode(),
                private_key=tls["key"].encode() if "key" in tls else None,
                certificate_chain=tls["cert"].encode() if "cert" in tls
                else None)
            self.channel = grpc.secure_channel(
                address, credentials,
                options=[("grpc.ssl_target_name_override", "localhost")])
        else:
            self.channel = grpc.insecure_channel(address)
        self.metadata = ((("authorization", "Bearer " + token),) if token
                         else None)
        self.m = messages

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        self.channel.close()

    def call(self, method, request, response_class):
        stub = self.channel.unary_unary(
            method, request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=response_class.FromString)
        return stub(request, timeout=RPC_TIMEOUT_S, metadata=self.metadata)

    def health(self, service):
        health = self.m["health"]
        answer = self.call("/grpc.health.v1.Health/Check",
                           health.HealthCheckRequest(service=service),
                           health.HealthCheckResponse)
        return health.HealthCheckResponse.ServingStatus.Name(answer.status)

    def list_functions(self):
        ex = self.m["executor"]
        return self.call("/remex.v1.Executor/ListFunctions",
                         ex.ListFunctionsRequest(), ex.ListFunctionsResponse)

    def submit(self, function, args):
        from google.protobuf import json_format  # pylint: disable=import-outside-toplevel
        ex = self.m["executor"]
        request = json_format.ParseDict(
            {"function": function, "args": args}, ex.SubmitRequest())
        return self.call("/remex.v1.Executor/Submit", request, ex.Task)

    def get(self, task_id):
        ex = self.m["executor"]
        return self.call("/remex.v1.Executor/Get", ex.GetRequest(id=task_id),
                         ex.Task)

    def await_task(self, task_id, timeout_s):
        from google.protobuf import json_format  # pylint: disable=import-outside-toplevel
        ex = self.m["executor"]
        request = json_format.ParseDict(
            {"id": task_id, "timeout": "%ds" % timeout_s}, ex.AwaitRequest())
        stub = self.channel.unary_unary(
            "/remex.v1.Executor/Await",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=ex.Task.FromString)
        task = stub(request, timeout=timeout_s + RPC_TIMEOUT_S,
                    metadata=self.metadata)
        return json_format.MessageToDict(task)

    def wait_until_running(self, task_id):
        ex = self.m["executor"]
        deadline = time.monotonic() + RPC_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.get(task_id).state == ex.State.Value("RUNNING"):
                return
            time.sleep(0.02)
        raise AssertionError("task %s did not start" % task_id)


def compile_protos(out_dir):
    """Python messages for remex.v1 and grpc.health.v1 (Debian's grpc_tools)."""
    import grpc_tools  # pylint: disable=import-outside-toplevel
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc",
         "-I" + os.path.join(REPO, "protos"),
         "-I" + os.path.join(REPO, "tests", "rpc"), "-I" + include,
         "--python_out=" + out_dir, "remex/v1/executor.proto",
         "health.proto"], check=True, timeout=60)
    sys.path.insert(0, out_dir)
    import health_pb2  # pylint: disable=import-outside-toplevel,import-error
    from remex.v1 import executor_pb2  # pylint: disable=import-outside-toplevel,import-error
    return {"health": health_pb2, "executor": executor_pb2}


def main():
    global RENDERER, SERVER, NODE_MODULES
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renderer", required=True)
    parser.add_argument("--server")
    parser.add_argument("--node-modules")
    parser.add_argument("tests", nargs="*")
    options = parser.parse_args()
    RENDERER = options.renderer
    SERVER = options.server and os.path.abspath(options.server)
    NODE_MODULES = options.node_modules
    if shutil.which("yamllint") is None and "YamllintTest" in options.tests:
        sys.exit("yamllint is not installed (scripts/install-deps.sh)")
    unittest.main(argv=[sys.argv[0], "-v"] + options.tests)


if __name__ == "__main__":
    main()
