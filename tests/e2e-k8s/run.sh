#!/usr/bin/env bash
# make e2e-k8s: rbdcsi under a real Kubernetes on this machine (issue 8). As root.
#
#   tests/e2e-k8s/run.sh            install what is missing, build, run the scenario, tear down
#   tests/e2e-k8s/run.sh --clean    only stop and remove what an earlier run left
#   tests/e2e-k8s/run.sh --keep     leave the cluster running afterwards (debugging)
#   tests/e2e-k8s/run.sh --deployed [--only kustomize,restarts,helm]
#                                   deploy/ as shipped, in pods (deployed.py: kustomize, the
#                                   restarts under live pods, then the Helm chart)
#
# Phases, each timed: packages (tests/deps.sh + the container runtime) -> rbdcsi (make) ->
# Go binaries (build.sh: Kubernetes, etcd, sidecars; cached by version) -> kustomize ->
# images (images/build.sh: pause, busybox, postgres from Debian binaries, the CSI sidecars from
# the Go binaries; nothing pulled) -> the rbdcsi image (deploy/image/build.sh, make image) ->
# e2e.py (Ceph, control plane, containerd, kubelet, CSI, the scenario, teardown).
# Ends with "N passed, M failed"; on a failure every component's log is printed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=/usr/bin/python3 # Debian's, with python3-yaml

if [[ ${EUID} -ne 0 ]]; then
	# Like the other privileged tests: skipped with a reason outside CI, a failure in it.
	echo "e2e-k8s: SKIPPED: needs root (kubelet, containerd, mounts, loop devices)" >&2
	[[ ${CI:-} == true ]] && exit 1
	exit 0
fi
# One Kubernetes at a time on a machine: its ports, /var/lib/kubelet and containerd are shared.
exec 9>/run/lock/rbdcsi-e2e.lock
if ! flock -n 9; then
	echo "e2e-k8s: another run holds /run/lock/rbdcsi-e2e.lock; waiting for it" >&2
	flock 9
fi
SCRIPT=tests/e2e-k8s/e2e.py
if [[ ${1:-} == --deployed ]]; then
	SCRIPT=tests/e2e-k8s/deployed.py
	shift
fi
if [[ ${1:-} == --clean ]]; then
	exec "$PYTHON" "$SCRIPT" --clean
fi

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T0=$(now_us)
T=$T0
phase() {
	local t
	t=$(now_us)
	printf 'e2e-k8s: %-28s %6.1f s\n' "$1" "$(((t - T) / 100000))e-1"
	T=$t
}

tests/deps.sh containerd runc containernetworking-plugins catatonit busybox-static openssl \
	iproute2
phase "packages"
make --no-print-directory -j"$(nproc)" all >/dev/null
phase "rbdcsi build"
BIN=$(tests/e2e-k8s/build.sh)
phase "go binaries"
# shellcheck source=tests/gotool.sh
. tests/gotool.sh
KUSTOMIZE=$(tool kustomize "$KUSTOMIZE_VERSION" "$KUSTOMIZE_MODULE")
phase "kustomize"
EXTRA=()
if [[ $SCRIPT == */deployed.py ]]; then
	EXTRA=(--helm "$(tool helm "$HELM_VERSION" "$HELM_MODULE/cmd/helm")")
	phase "helm"
fi
IMAGES=${RBDCSI_E2E_CACHE:-/var/cache/rbdcsi-e2e}/images
tests/e2e-k8s/images/build.sh "$IMAGES" "$BIN" >&2
phase "images"
# The rbdcsi image (deploy/image/build.sh, cached: warm = re-tar + checks, ~30 s).
tests/deps.sh mmdebstrap >&2
RBDCSI_IMAGE=$(deploy/image/build.sh)
phase "rbdcsi image (make image)"
rc=0
"$PYTHON" "$SCRIPT" --bin "$BIN" --images "$IMAGES" --rbdcsi build/rbdcsi \
	--rbdcsi-image "$RBDCSI_IMAGE" --kustomize "$KUSTOMIZE" "${EXTRA[@]}" "$@" || rc=$?
phase "cluster, scenario, teardown"
T=$T0
phase "total"
exit $rc
