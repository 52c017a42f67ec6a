#!/usr/bin/env bash
# Checks everything under deploy/:
#   (a) `kustomize build deploy/kubernetes` (and examples/) and `helm template deploy/helm/rbdcsi`
#       (defaults, and tests/deploy/values-full.yaml) render; helm lint passes; values the
#       chart's values.schema.json or kubeVersion forbid do not render;
#   (b) every rbdcsi container's args in those renderings pass `$RBDCSI <args> --dry-run`
#       ($(VAR) refs expanded with dummy values, mounted ConfigMaps written to a temp dir);
#   (c) CSIDriver.attachRequired and the controller's sidecars match the capabilities that the
#       controller's --dry-run reports (attacher <-> PUBLISH_UNPUBLISH_VOLUME, resizer <->
#       EXPAND_VOLUME, snapshotter <-> CREATE_DELETE_SNAPSHOT, provisioner <-> CREATE_DELETE_VOLUME);
#   (d) Helm and kustomize render the same kinds/names, and (e) the same objects apart from labels.
# Also: every static YAML file parses, config.json and the StorageClass parameters are valid.
#
# Usage: RBDCSI=build/rbdcsi tests/deploy/check.sh      (RBDCSI defaults to build/rbdcsi)
# Needs: go (builds kustomize and helm from the Go module proxy at pinned versions, cached under
# ${XDG_CACHE_HOME:-~/.cache}/rbdcsi/tools/<name>-<version>/), /usr/bin/python3 with python3-yaml.
# Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exits 1 on any failure.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

PYTHON=/usr/bin/python3 # Debian's, with python3-yaml; `python3` on PATH may be another one.

RBDCSI=${RBDCSI:-build/rbdcsi}
case $RBDCSI in /*) ;; *) RBDCSI=$ROOT/$RBDCSI ;; esac
# shellcheck source=tests/checklib.sh
. "$ROOT/tests/checklib.sh"
finish() {
	echo "$passed passed, $failed failed"
	if [ "$failed" -eq 0 ]; then
		exit 0
	fi
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbdcsi-deploy-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# shellcheck source=tests/gotool.sh
. "$ROOT/tests/gotool.sh"

# --- python3-yaml ------------------------------------------------------------------------
if ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
	fail "$PYTHON cannot import yaml (apt-get install python3-yaml)"
	finish
fi

# --- (a) tools and renderings --------------------------------------------------------------
if KUSTOMIZE=$(tool kustomize "$KUSTOMIZE_VERSION" "$KUSTOMIZE_MODULE"); then
	pass "kustomize $KUSTOMIZE_VERSION available"
else
	fail "kustomize $KUSTOMIZE_VERSION could not be built"
	KUSTOMIZE=
fi
if HELM=$(tool helm "$HELM_VERSION" "$HELM_MODULE/cmd/helm"); then
	pass "helm $HELM_VERSION available"
else
	fail "helm $HELM_VERSION could not be built"
	HELM=
fi

# render LABEL OUTFILE CMD...: run a renderer, PASS/FAIL on its exit status.
render() {
	local label=$1 out=$2
	shift 2
	if "$@" >"$out" 2>"$out.err"; then
		pass "$label"
		return 0
	fi
	fail "$label"
	sed 's/^/      /' "$out.err" | head -n 20
	rm -f "$out"
	return 1
}

if [ -n "$KUSTOMIZE" ]; then
	render "kustomize build deploy/kubernetes" "$WORK/kustomize.yaml" \
		"$KUSTOMIZE" build deploy/kubernetes || true
	render "kustomize build deploy/kubernetes/examples" "$WORK/examples.yaml" \
		"$KUSTOMIZE" build deploy/kubernetes/examples || true
fi
if [ -n "$HELM" ]; then
	# HELM_* dirs in $WORK: helm must not read or write the invoking user's config or cache.
	export HELM_CONFIG_HOME=$WORK/helm/config HELM_CACHE_HOME=$WORK/helm/cache \
		HELM_DATA_HOME=$WORK/helm/data
	render "helm lint deploy/helm/rbdcsi" "$WORK/lint.txt" \
		"$HELM" lint deploy/helm/rbdcsi --namespace rbdcsi || true
	render "helm template deploy/helm/rbdcsi (default values)" "$WORK/helm.yaml" \
		"$HELM" template rbdcsi deploy/helm/rbdcsi --namespace rbdcsi || true
	render "helm template deploy/helm/rbdcsi -f tests/deploy/values-full.yaml" \
		"$WORK/helm-full.yaml" \
		"$HELM" template rbdcsi deploy/helm/rbdcsi --namespace rbdcsi \
		-f tests/deploy/values-full.yaml || true
	# One release per zone (deploy/README.md, Topology): two releases with the documented
	# values share no cluster-scoped name, and each controller carries its zone's topology.
	for z in a b; do
		render "helm template: the zone-$z release" "$WORK/zone-$z.yaml" \
			"$HELM" template "rbdcsi-zone-$z" deploy/helm/rbdcsi --namespace "rbdcsi-zone-$z" \
			--set driverName="zone-$z.rbdcsi.io" --set clusterScopedPrefix="rbdcsi-zone-$z" \
			--set-json "node.topology={\"topology.rbdcsi.io/zone\":\"$z\"}" \
			--set-json "storageClasses=[{\"name\":\"rbdcsi-zone-$z\",\"clusterID\":\"c1\",\"pool\":\"rbd-$z\",\"fsType\":\"ext4\",\"volumeBindingMode\":\"WaitForFirstConsumer\"}]" \
			--set snapshotClass.name="rbdcsi-snapclass-zone-$z" || true
	done
	if [ -s "$WORK/zone-a.yaml" ] && [ -s "$WORK/zone-b.yaml" ]; then
		if out=$("$PYTHON" - "$WORK/zone-a.yaml" "$WORK/zone-b.yaml" <<'PYEOF'
import sys
import yaml

CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "CSIDriver", "StorageClass",
                 "VolumeSnapshotClass", "Namespace", "PriorityClass"}
names, topo = [], []
for path, zone in zip(sys.argv[1:], "ab"):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    names.append({(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in CLUSTER_KINDS})
    args = [a for d in docs if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"] for a in c.get("args", [])]
    topo.append("--topology=topology.rbdcsi.io/zone=" + zone in args)
both = names[0] & names[1]
if both or not all(topo) or not names[0]:
    print("shared cluster-scoped names %s; controller topology per zone %s" % (sorted(both), topo))
    sys.exit(1)
print("%d cluster-scoped objects each, none shared" % len(names[0]))
PYEOF
		); then
			pass "helm: two zone releases share no cluster-scoped name ($out)"
		else
			fail "helm: two zone releases collide: $out"
		fi
	fi
	# values.schema.json and kubeVersion refuse what they should (each must fail to render).
	for bad in "--set logLevel=verbose" "--set controler.replicas=1" \
		"--set sidecars.pullPolicy=Sometimes" "--set node.metricsAddress=nowhere" \
		"--kube-version 1.29.0"; do
		# shellcheck disable=SC2086 # the option and its value are two words
		if "$HELM" template rbdcsi deploy/helm/rbdcsi --namespace rbdcsi $bad \
			>/dev/null 2>"$WORK/bad.txt"; then
			fail "helm template $bad: rendered, values.schema.json/kubeVersion should refuse it"
		else
			pass "helm template $bad: refused ($(grep -m1 -oE "at '[^']*'|kubeVersion" "$WORK/bad.txt"))"
		fi
	done
fi

# --- (b)-(e) on the renderings, with a real YAML parser ------------------------------------
args=(--rbdcsi "$RBDCSI")
[ -s "$WORK/kustomize.yaml" ] && args+=(--kustomize "$WORK/kustomize.yaml")
[ -s "$WORK/helm.yaml" ] && args+=(--helm "$WORK/helm.yaml")
[ -s "$WORK/helm-full.yaml" ] && args+=(--helm-full "$WORK/helm-full.yaml")
[ -s "$WORK/examples.yaml" ] && args+=(--examples "$WORK/examples.yaml")
if [ ! -s "$WORK/kustomize.yaml" ] || [ ! -s "$WORK/helm.yaml" ]; then
	fail "renderings missing: checks (b)-(e) not run"
	finish
fi

# Static YAML files (Helm templates are not YAML until rendered; values files are).
mapfile -t yaml_files < <(find deploy tests/deploy -type f \( -name '*.yaml' -o -name '*.yml' \) \
	-not -path 'deploy/helm/*/templates/*' | sort)

while IFS= read -r line; do
	echo "$line"
	case $line in
	"PASS  "*) passed=$((passed + 1)) ;;
	"FAIL  "*) failed=$((failed + 1)) ;;
	esac
done < <("$PYTHON" tests/deploy/manifests.py "${args[@]}" "${yaml_files[@]}" 2>&1 ||
	echo "FAIL  tests/deploy/manifests.py exited with status $?")

finish
