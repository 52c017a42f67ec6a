#!/usr/bin/env bash
# make bench-k8s (issue 18): PVC storms and pod start storms on the e2e's real Kubernetes
# (tests/e2e-k8s/storm.py). As root; takes the e2e lock like run.sh and prepares the same way
# (packages, rbdcsi, the Go binaries, kustomize, the images).
#
#   tests/e2e-k8s/bench.sh                        the small sizes: 100 PVCs, 10 pods
#   STORM_PVCS=100,500,1000 STORM_PODS=10,25,50 tests/e2e-k8s/bench.sh     all three sizes
#   BENCH_JSON=build/bench.json                   where k8s_pvc_storm / k8s_pod_storm go
# Figures are never asserted; the exit status says whether every storm ran with no error and
# left nothing behind.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=/usr/bin/python3
STORM_PVCS=${STORM_PVCS:-100}
STORM_PODS=${STORM_PODS:-10}
BENCH_JSON=${BENCH_JSON:-build/bench.json}

if [[ ${EUID} -ne 0 ]]; then
	echo "bench-k8s: SKIPPED: needs root (kubelet, containerd, mounts, loop devices)" >&2
	exit 0
fi
exec 9>/run/lock/rbdcsi-e2e.lock
if ! flock -n 9; then
	echo "bench-k8s: another run holds /run/lock/rbdcsi-e2e.lock; waiting for it" >&2
	flock 9
fi

tests/deps.sh containerd runc containernetworking-plugins catatonit busybox-static openssl \
	iproute2 >&2
make --no-print-directory -j"$(nproc)" all >/dev/null
BIN=$(tests/e2e-k8s/build.sh)
# shellcheck source=tests/gotool.sh
. tests/gotool.sh
KUSTOMIZE=$(tool kustomize "$KUSTOMIZE_VERSION" "$KUSTOMIZE_MODULE")
IMAGES=${RBDCSI_E2E_CACHE:-/var/cache/rbdcsi-e2e}/images
tests/e2e-k8s/images/build.sh "$IMAGES" "$BIN" >&2
tests/deps.sh mmdebstrap >&2
RBDCSI_IMAGE=$(deploy/image/build.sh)
exec "$PYTHON" tests/e2e-k8s/storm.py --bin "$BIN" --images "$IMAGES" --rbdcsi build/rbdcsi \
	--rbdcsi-image "$RBDCSI_IMAGE" --kustomize "$KUSTOMIZE" --pvcs "$STORM_PVCS" \
	--pods "$STORM_PODS" --json "$BENCH_JSON"
