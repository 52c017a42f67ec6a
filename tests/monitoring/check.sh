#!/usr/bin/env bash
# Checks deploy/monitoring and the objects made from it:
#   - promtool check rules (the source, and the PrometheusRule of kustomize and of Helm);
#   - promtool test rules deploy/monitoring/rules_test.yaml (each alert fires and stays quiet);
#   - the copies deploy/monitoring/sync.py writes are current;
#   - dashboard.json is valid JSON with a query in every panel;
#   - the kustomize component and the Helm switch (monitoring.enabled) render the same
#     Services, ServiceMonitor, PrometheusRule, dashboard ConfigMap and doctor sidecar.
# That every metric the dashboard and the rules query is exported is checked against a running
# driver by tests/integration/test_monitoring.py.
#
# promtool comes from Debian's prometheus package: unless promtool is on PATH, the .deb is
# fetched with `apt-get download` (19 MB, nothing installed, no service started) and promtool
# extracted once into ${XDG_CACHE_HOME:-~/.cache}/rbdcsi/tools/promtool-<version>/.
# kustomize and helm: tests/gotool.sh (pinned, from the Go module proxy, cached).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=/usr/bin/python3

# shellcheck source=tests/checklib.sh
. "$ROOT/tests/checklib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbdcsi-monitoring-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# shellcheck source=tests/gotool.sh
. "$ROOT/tests/gotool.sh"

promtool_path() {
	if command -v promtool >/dev/null; then
		command -v promtool
		return 0
	fi
	local version dir
	version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
	if [ -z "$version" ] || [ "$version" = "(none)" ]; then
		echo "  TOOL    promtool: no prometheus package known to apt" >&2
		return 1
	fi
	dir=$TOOLS/promtool-${version//[^A-Za-z0-9.+-]/_}
	if [ -x "$dir/promtool" ]; then
		echo "$dir/promtool"
		return 0
	fi
	echo "  TOOL    promtool $version: apt-get download prometheus" >&2
	mkdir -p "$WORK/deb" "$dir"
	(cd "$WORK/deb" && apt-get download "prometheus=$version" >/dev/null 2>&1) || return 1
	dpkg-deb -x "$WORK"/deb/prometheus_*.deb "$WORK/deb/x" || return 1
	install -m 0755 "$WORK/deb/x/usr/bin/promtool" "$dir/promtool.tmp" &&
		mv -f "$dir/promtool.tmp" "$dir/promtool"
	echo "$dir/promtool"
}

if PROMTOOL=$(promtool_path); then
	pass "promtool available ($("$PROMTOOL" --version 2>&1 | head -1))"
else
	fail "promtool: cannot get Debian's prometheus package"
	PROMTOOL=
fi

if [ -n "$PROMTOOL" ]; then
	if out=$("$PROMTOOL" check rules deploy/monitoring/rules.yaml 2>&1); then
		pass "promtool check rules deploy/monitoring/rules.yaml ($(echo "$out" | grep -o '[0-9]* rules found'))"
	else
		fail "promtool check rules deploy/monitoring/rules.yaml"
		echo "$out"
	fi
	if out=$(cd deploy/monitoring && "$PROMTOOL" test rules rules_test.yaml 2>&1); then
		pass "promtool test rules deploy/monitoring/rules_test.yaml"
	else
		fail "promtool test rules deploy/monitoring/rules_test.yaml"
		echo "$out"
	fi
fi

if out=$("$PYTHON" deploy/monitoring/sync.py --check 2>&1); then
	pass "copies of rules.yaml and dashboard.json are current (deploy/monitoring/sync.py)"
else
	fail "copies out of date"
	echo "$out"
fi

if out=$("$PYTHON" - deploy/monitoring/dashboard.json <<'PY' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
for p in d["panels"]:
    assert p.get("title"), "panel %s has no title" % p["id"]
    assert p.get("targets") and all(t.get("expr") for t in p["targets"]), \
        "panel %r has no query" % p["title"]
print(len(ids), "panels")
PY
); then
	pass "dashboard.json is valid JSON, every panel has a query ($out)"
else
	fail "dashboard.json"
	echo "$out"
fi

# --- the kustomize component and the Helm switch -------------------------------------------
KUSTOMIZE=$(tool kustomize "$KUSTOMIZE_VERSION" "$KUSTOMIZE_MODULE") || KUSTOMIZE=
HELM=$(tool helm "$HELM_VERSION" "$HELM_MODULE/cmd/helm") || HELM=
mkdir -p "$WORK/overlay"
cat >"$WORK/overlay/kustomization.yaml" <<KEOF
resources: [$(realpath --relative-to="$WORK/overlay" "$ROOT/deploy/kubernetes")]
components: [$(realpath --relative-to="$WORK/overlay" "$ROOT/deploy/kubernetes/components/monitoring")]
KEOF
if [ -n "$KUSTOMIZE" ] && "$KUSTOMIZE" build \
	"$WORK/overlay" >"$WORK/kustomize.yaml" 2>"$WORK/kustomize.err"; then
	pass "kustomize build with components/monitoring"
else
	fail "kustomize build with components/monitoring"
	cat "$WORK/kustomize.err" 2>/dev/null || true
fi
if [ -n "$HELM" ] && "$HELM" template rbdcsi deploy/helm/rbdcsi -n rbdcsi --set monitoring.enabled=true \
	>"$WORK/helm.yaml" 2>"$WORK/helm.err"; then
	pass "helm template --set monitoring.enabled=true"
else
	fail "helm template --set monitoring.enabled=true"
	cat "$WORK/helm.err" 2>/dev/null || true
fi
if [ -n "$HELM" ] && "$HELM" template rbdcsi deploy/helm/rbdcsi -n rbdcsi >"$WORK/helm-off.yaml" 2>&1 &&
	! grep -qE 'kind: (ServiceMonitor|PrometheusRule)|name: doctor' "$WORK/helm-off.yaml"; then
	pass "helm template without monitoring renders none of it"
else
	fail "helm template without monitoring renders monitoring objects"
fi

if [ -s "$WORK/kustomize.yaml" ] && [ -s "$WORK/helm.yaml" ]; then
	if out=$("$PYTHON" - "$WORK" <<'PY' 2>&1
import json, os, sys, yaml
work = sys.argv[1]
def load(name):
    return [d for d in yaml.safe_load_all(open(os.path.join(work, name))) if d]
rules = yaml.safe_load(open("deploy/monitoring/rules.yaml"))["groups"]
dash = json.load(open("deploy/monitoring/dashboard.json"))
for name in ("kustomize.yaml", "helm.yaml"):
    docs = load(name)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for want in [("Service", "rbdcsi-controller-metrics"), ("Service", "rbdcsi-node-metrics"),
                 ("ServiceMonitor", "rbdcsi"), ("PrometheusRule", "rbdcsi"),
                 ("ConfigMap", "rbdcsi-grafana-dashboard")]:
        assert want in by, "%s: no %s %s" % (name, *want)
    pr = by[("PrometheusRule", "rbdcsi")]
    assert pr["spec"]["groups"] == rules, "%s: PrometheusRule differs from rules.yaml" % name
    with open(os.path.join(work, name + ".rules.yaml"), "w") as f:
        yaml.safe_dump({"groups": pr["spec"]["groups"]}, f)
    cm = by[("ConfigMap", "rbdcsi-grafana-dashboard")]
    assert json.loads(cm["data"]["rbdcsi.json"]) == dash, "%s: dashboard differs" % name
    assert cm["metadata"]["labels"].get("grafana_dashboard") == "1"
    sm = by[("ServiceMonitor", "rbdcsi")]
    for svc in ("rbdcsi-controller-metrics", "rbdcsi-node-metrics"):
        labels = by[("Service", svc)]["metadata"]["labels"]
        sel = sm["spec"]["selector"]["matchLabels"]
        assert all(labels.get(k) == v for k, v in sel.items()), "%s: %s not selected" % (name, svc)
    pod = by[("Deployment", "rbdcsi-controller")]["spec"]["template"]["spec"]
    doctor = [c for c in pod["containers"] if c["name"] == "doctor"]
    assert doctor and doctor[0]["args"][0] == "doctor", "%s: no doctor sidecar" % name
    args = doctor[0]["args"]
    textfile = [a for a in args if a.startswith("--textfile=")][0].split("=", 1)[1]
    rb = [c for c in pod["containers"] if c["name"] == "rbdcsi"][0]
    mounts = {m["name"]: m["mountPath"] for m in rb["volumeMounts"]}
    # The controller reads <state-dir>/<drivername>/doctor.prom (default state dir).
    driver = [a for a in rb["args"] if a.startswith("--drivername=")][0].split("=", 1)[1]
    assert textfile == "/var/lib/rbdcsi/%s/doctor.prom" % driver, textfile
    assert mounts.get("doctor") == os.path.dirname(textfile), (name, mounts)
    assert not any(a.startswith(("--key", "--userKey")) for a in args), "key on argv"
print("ok")
PY
); then
		pass "kustomize and Helm: metrics Services, ServiceMonitor, PrometheusRule = rules.yaml, dashboard, doctor sidecar"
	else
		fail "kustomize/Helm monitoring objects"
		echo "$out"
	fi
	for r in kustomize helm; do
		if [ -n "$PROMTOOL" ] && [ -f "$WORK/$r.yaml.rules.yaml" ] &&
			"$PROMTOOL" check rules "$WORK/$r.yaml.rules.yaml" >/dev/null 2>&1; then
			pass "promtool check rules on the $r PrometheusRule"
		else
			fail "promtool check rules on the $r PrometheusRule"
		fi
	done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
