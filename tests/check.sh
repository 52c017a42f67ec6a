#!/usr/bin/env bash
# Everything `make check` runs, in order, with the time of each stage and one summary line:
#   build -> lint, format, cppcheck -> fuzz corpus replay -> a throwaway Ceph ->
#   unit tests -> unit tests + fuzz replay under ASan+UBSan -> integration (python) ->
#   csi-sanity -> deploy checks -> secret leak check -> teardown -> the container image
#   (tests/image: make image and its checks) -> the Kubernetes e2e
#   (tests/e2e-k8s: a real control plane, kubelet and CSI sidecars around the driver).
# Stages after a failure still run (so one run shows every problem); the exit code is non-zero
# if any failed. CEPH_DIR may name where the cluster lives (default: a new /tmp dir).
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
MAKEFLAGS_J=${MAKEFLAGS_J:--j$(nproc)}
export B=build
# This run starts a Ceph and runs as root (CI): a unit or integration test that skips for want
# of either fails instead (tests/unit/require.h, tests/integration/run.py). Set to 0 to allow.
export RBDCSI_REQUIRE_CEPH=${RBDCSI_REQUIRE_CEPH-1}
export RBDCSI_REQUIRE_ROOT=${RBDCSI_REQUIRE_ROOT-1}

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T0=$(now_us)
passed=0
failed=0
failed_stages=()

stage() {
	local name=$1
	shift
	local t
	t=$(now_us)
	echo
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
		printf '=== %s: ok (%.1fs)\n' "$name" "$(($(now_us) - t))e-6"
	else
		failed=$((failed + 1))
		failed_stages+=("$name")
		printf '=== %s: FAILED (%.1fs)\n' "$name" "$(($(now_us) - t))e-6"
	fi
}

CEPH_DIR_OWN=""
LOG_DIR=$(mktemp -d /tmp/rbdcsi-logs.XXXXXX)
export RBDCSI_TEST_LOG_DIR=$LOG_DIR
cleanup() {
	if [ -n "$CEPH_DIR_OWN" ]; then
		CEPH_DIR=$CEPH_DIR_OWN tests/ceph/ceph-down.sh >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

build() {
	$MAKE --no-print-directory "$MAKEFLAGS_J" all tools tests-build
}
ceph_up() {
	local dir
	dir=$(tests/ceph/ceph-up.sh) || return 1
	CEPH_DIR_OWN=$dir
	# shellcheck disable=SC1091
	. "$dir/env"
	export CEPH_DIR CEPH_CONF RBDCSI_TEST_MONITORS RBDCSI_TEST_USER RBDCSI_TEST_KEY \
		RBDCSI_TEST_POOL RBDCSI_TEST_POOL2 RBDCSI_TEST_FSID
}
sanitized() {
	$MAKE --no-print-directory "$MAKEFLAGS_J" SANITIZE=address,undefined unit fuzz-replay
}
secrets_check() {
	# The key must appear in no log of this run and in no process's command line.
	local hits=0 f
	for f in "$LOG_DIR"/* "$CEPH_DIR_OWN"/log/*; do
		[ -f "$f" ] || continue
		if grep -qF "$RBDCSI_TEST_KEY" "$f"; then
			echo "secret found in $f" >&2
			hits=$((hits + 1))
		fi
	done
	for f in /proc/[0-9]*/cmdline; do
		if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF "$RBDCSI_TEST_KEY"; then
			echo "secret found in $f" >&2
			hits=$((hits + 1))
		fi
	done
	echo "secrets: $hits hits in $(ls "$LOG_DIR" | wc -l) logs and every /proc/*/cmdline"
	[ "$hits" -eq 0 ]
}
leftovers_check() {
	# After the suites: no rbd-fuse process, no loop device or mount of ours.
	# Only this run's: its test and sanity directories and its cluster.
	local bad=0 ours="rbdcsi-test\.|rbdcsi-sanity\.|${CEPH_DIR_OWN:-/nonexistent}"
	if pgrep -ax rbd-fuse | grep -E "$ours" >&2; then
		echo "rbd-fuse processes left (above)" >&2
		bad=1
	fi
	if grep -E 'rbdcsi-(test|sanity)' /proc/self/mounts; then
		echo "mounts left" >&2
		bad=1
	fi
	if losetup -a 2>/dev/null | grep -E "$ours"; then
		echo "loop devices left" >&2
		bad=1
	fi
	[ "$bad" -eq 0 ] && echo "no mounts, loop devices or rbd-fuse processes left"
	[ "$bad" -eq 0 ]
}

stage "build" build
stage "lint (layering, banned functions)" $MAKE --no-print-directory lint
stage "format (clang-format)" $MAKE --no-print-directory format-check
stage "cppcheck" $MAKE --no-print-directory cppcheck
stage "fuzz corpus replay" $MAKE --no-print-directory fuzz-replay
stage "ceph up" ceph_up
stage "unit tests" $MAKE --no-print-directory unit
stage "unit tests + fuzz replay under ASan+UBSan" sanitized
stage "integration (python)" env ONLY=python CSI_SANITY="$(ls build/tools/csi-sanity-* | head -1)" tests/run-integration.sh
stage "csi-sanity" env ONLY=sanity CSI_SANITY="$(ls build/tools/csi-sanity-* | head -1)" tests/run-integration.sh
# The gRPC edge under hostile load (issue 13): bounded RSS, Probe never starved; no Ceph needed.
stage "hostile gRPC load (tests/hostile)" /usr/bin/python3 tests/hostile/hostile.py \
	--rbdcsi build/rbdcsi --check --json build/hostile.json
if [ -x tests/deploy/check.sh ]; then
	stage "deploy manifests" env RBDCSI="$(pwd)/build/rbdcsi" tests/deploy/check.sh
fi
stage "monitoring (promtool rules + tests, dashboard, component/Helm)" tests/monitoring/check.sh
stage "no leftovers" leftovers_check
stage "no secrets in logs or argv" secrets_check
# The Kubernetes e2e brings up its own Ceph; free this one's memory first.
cleanup
CEPH_DIR_OWN=""
# The Ceph release matrix (issue 16): Ceph 18.2 (Debian 13) in a chroot, the driver built against
# its libraries; csi-sanity and the controller, snapshot, node and compat suites (README).
stage "ceph 18.2 matrix (tests/ceph-matrix.sh trixie)" tests/ceph-matrix.sh trixie
stage "container image (make image, tests/image/check.sh)" tests/image/check.sh
# krbd and rbd-nbd on a real Debian kernel (qemu, TCG), with its own Ceph inside the guest.
stage "real kernel: krbd, rbd-nbd, csi-sanity Node (tests/kernel/run.sh)" tests/kernel/run.sh
stage "kubernetes e2e (tests/e2e-k8s/run.sh)" tests/e2e-k8s/run.sh
# deploy/ as shipped, in pods, with its RBAC; restarts under live pods; then the Helm chart.
stage "kubernetes e2e, deployed (tests/e2e-k8s/run.sh --deployed)" tests/e2e-k8s/run.sh --deployed

echo
printf 'check: total %.1fs\n' "$(($(now_us) - T0))e-6"
[ "${#failed_stages[@]}" -eq 0 ] || printf 'check: FAILED stage: %s\n' "${failed_stages[@]}"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
