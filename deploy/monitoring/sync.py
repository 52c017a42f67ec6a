#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/monitoring holds the sources: rules.yaml and dashboard.json. kustomize and Helm can
only read files below their own directories, so each gets copies, which this script writes:

  deploy/kubernetes/components/monitoring/prometheusrule.yaml  (rules.yaml's groups, as a CR)
  deploy/kubernetes/components/monitoring/dashboard.json
  deploy/helm/rbdcsi/files/monitoring/rules.yaml
  deploy/helm/rbdcsi/files/monitoring/dashboard.json

  deploy/monitoring/sync.py          rewrite the copies
  deploy/monitoring/sync.py --check  exit 1 (naming the file) when a copy differs
Run with Debian's /usr/bin/python3 (python3-yaml)."""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
COMPONENT = os.path.join(DEPLOY, "kubernetes", "components", "monitoring")
HELM_FILES = os.path.join(DEPLOY, "helm", "rbdcsi", "files", "monitoring")

HEADER = """# Written by deploy/monitoring/sync.py from deploy/monitoring/rules.yaml: edit that file and
# run the script (`make check` fails when this copy differs).
"""


class Dumper(yaml.SafeDumper):
    pass


def _str(dumper, s):
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)


Dumper.add_representer(str, _str)


def read(path):
    with open(path) as f:
        return f.read()


def wanted():
    rules = read(os.path.join(HERE, "rules.yaml"))
    dashboard = read(os.path.join(HERE, "dashboard.json"))
    cr = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
          "metadata": {"name": "rbdcsi", "namespace": "rbdcsi",
                       "labels": {"app.kubernetes.io/name": "rbdcsi",
                                  "app.kubernetes.io/part-of": "rbdcsi"}},
          "spec": {"groups": yaml.safe_load(rules)["groups"]}}
    return {
        os.path.join(COMPONENT, "prometheusrule.yaml"):
            HEADER + yaml.dump(cr, Dumper=Dumper, sort_keys=False, width=1000),
        os.path.join(COMPONENT, "dashboard.json"): dashboard,
        os.path.join(HELM_FILES, "rules.yaml"): rules,
        os.path.join(HELM_FILES, "dashboard.json"): dashboard,
    }


def main():
    check = sys.argv[1:] == ["--check"]
    bad = 0
    for path, text in wanted().items():
        have = read(path) if os.path.exists(path) else None
        if have == text:
            continue
        if check:
            print("%s differs from deploy/monitoring: run deploy/monitoring/sync.py"
                  % os.path.relpath(path, os.path.dirname(DEPLOY)))
            bad += 1
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
