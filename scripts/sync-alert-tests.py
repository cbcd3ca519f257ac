#!/usr/bin/env python3
"""Copies the annotations of monitoring/alerts/remex.rules.yml into the
expected alerts of monitoring/alerts/tests.yml, so that the tests run with
plain `promtool test rules monitoring/alerts/tests.yml` (promtool compares
annotations too) while each runbook is written once, in the rules.

Each expected alert in tests.yml is one line `- exp_labels: {...}` (a flow
mapping) under an `alertname:`; this script replaces whatever
`exp_annotations:` block follows it with the rule's annotations, their
{{ $labels.x }} templates filled in from exp_labels. Everything else in
tests.yml (comments included) is left as it is.

Usage: scripts/sync-alert-tests.py [--check] [RULES TESTS]
  --check  change nothing; exit 1 (and say so) if tests.yml is not in sync.
"""

import argparse
import json
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(REPO, "monitoring", "alerts", "remex.rules.yml")
TESTS = os.path.join(REPO, "monitoring", "alerts", "tests.yml")

LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
ALERTNAME = re.compile(r"^\s*(?:-\s+)?alertname:\s*(\S+)\s*$")
EXP_LABELS = re.compile(r"^(\s*)-\s+exp_labels:\s*(\{.*\})\s*$")
EXP_ANNOTATIONS = re.compile(r"^(\s*)exp_annotations:")


def alert_annotations(rules_path):
    """Alert name -> its annotations."""
    with open(rules_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    return {rule["alert"]: rule.get("annotations", {})
            for group in rules["groups"] for rule in group["rules"]
            if "alert" in rule}


def render(text, labels):
    """Fills in {{ $labels.x }} as Prometheus does (a missing label is "");
    any other template would make the expectation depend on the value."""
    rendered = LABEL_TEMPLATE.sub(lambda m: str(labels.get(m.group(1), "")),
                                  text)
    if "{{" in rendered:
        raise ValueError("only {{ $labels.x }} templates are supported: %r"
                         % text)
    return rendered


def scalar(value, indent):
    """A YAML scalar for `value`: a literal block for multi-line text, else
    a double-quoted string (JSON's escapes are YAML's)."""
    literal_ok = ("\n" in value and value.endswith("\n")
                  and not value.endswith("\n\n") and not value.startswith(" ")
                  and all(line == line.rstrip() for line in value.split("\n"))
                  and "\t" not in value)
    if not literal_ok:
        return json.dumps(value, ensure_ascii=False)
    pad = " " * indent
    lines = value[:-1].split("\n")
    return "|\n" + "\n".join(pad + line if line else "" for line in lines)


def annotations_block(annotations, labels, indent):
    pad = " " * indent
    out = [pad + "exp_annotations:"]
    for name, text in annotations.items():
        out.append("%s  %s: %s" % (pad, name,
                                   scalar(render(text, labels), indent + 4)))
    return out


def sync(rules_path, tests_text):
    annotations = alert_annotations(rules_path)
    lines = tests_text.split("\n")
    out = []
    alertname = None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = ALERTNAME.match(line)
        if match:
            alertname = match.group(1)
        match = EXP_LABELS.match(line)
        out.append(line)
        i += 1
        if not match:
            continue
        indent = len(match.group(1)) + 2
        # Drop the old block: its key line and everything indented deeper.
        if i < len(lines) and EXP_ANNOTATIONS.match(lines[i]):
            key_indent = len(EXP_ANNOTATIONS.match(lines[i]).group(1))
            i += 1
            while i < len(lines):
                following = next((l for l in lines[i:] if l.strip()), "")
                if len(following) - len(following.lstrip()) <= key_indent:
                    break
                i += 1
        if alertname not in annotations:
            raise ValueError("tests.yml expects %s, which remex.rules.yml "
                             "does not define" % alertname)
        labels = yaml.safe_load(match.group(2))
        out += annotations_block(annotations[alertname], labels, indent)
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("rules", nargs="?", default=RULES)
    parser.add_argument("tests", nargs="?", default=TESTS)
    args = parser.parse_args()
    with open(args.tests, encoding="utf-8") as f:
        before = f.read()
    after = sync(args.rules, before)
    if args.check:
        if after != before:
            print("%s: the expected annotations differ from %s; run "
                  "scripts/sync-alert-tests.py" % (args.tests, args.rules),
                  file=sys.stderr)
            return 1
        return 0
    if after != before:
        with open(args.tests, "w", encoding="utf-8") as f:
            f.write(after)
        print("updated " + os.path.relpath(args.tests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
