#!/bin/bash
# The test runner inside the check-kernel guest (started by guest-init.sh): a throwaway Ceph
# on the guest's loopback, then tests/kernel/test_kernel.py (the krbd and rbd-nbd data paths
# through the real binary), then csi-sanity's Node specs with mounter krbd. Each step is bounded
# in time. Writes a summary to /out/summary; exits non-zero when anything failed.
set -uo pipefail
cd /repo
B=$(cat /out/build-dir 2>/dev/null || echo build)
export B RBDCSI=/repo/$B/rbdcsi
export RBDCSI_TEST_LOG_DIR=/out/logs
mkdir -p "$RBDCSI_TEST_LOG_DIR"

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T0=$(now_us)
secs() { printf '%d.%d' $((($(now_us) - $1) / 1000000)) $((($(now_us) - $1) % 1000000 / 100000)); }
summary() { echo "guest: $*" | tee -a /out/summary; }
fail=0

# Unit tests that need what only this kernel has (dm-crypt): no Ceph needed.
mapfile -t tests < <(grep -v '^$' /out/tests 2>/dev/null)
t=$(now_us)
for u in "$B"/tests/unit/driver/host/test_crypt "$B"/tests/unit/driver/host/test_stage_crypt; do
	if [ ! -x "$u" ]; then
		summary "${u##*/}: not built (make tests-build)"
		fail=1
	elif timeout 300 "$u"; then
		summary "${u##*/} (dm-crypt): ok in $(secs "$t") s"
	else
		summary "${u##*/} (dm-crypt): FAILED"
		fail=1
	fi
done
if [ "${tests[0]:-}" = unit ]; then
	summary "runner total $(secs "$T0") s"
	exit "$fail"
fi

t=$(now_us)
# Every ceph CLI call takes seconds on the emulated CPU: longer bounds than on a host.
CEPH_DIR=$(CMD_TIMEOUT=120 UP_TIMEOUT=300 MON_ANSWER_TIMEOUT=60 timeout 900 \
	tests/ceph/ceph-up.sh) || {
	summary "ceph-up failed after $(secs "$t") s"
	exit 1
}
# shellcheck disable=SC1091
. "$CEPH_DIR/env"
export CEPH_DIR CEPH_CONF RBDCSI_TEST_MONITORS RBDCSI_TEST_USER RBDCSI_TEST_KEY \
	RBDCSI_TEST_POOL RBDCSI_TEST_POOL2 RBDCSI_TEST_FSID
summary "ceph up in $(secs "$t") s"

run_python=1
run_sanity=1
case "${tests[0]:-}" in
"") ;;
sanity) run_python=0 ;;
bench)
	# make bench: the staging latency figures only.
	export RBDCSI_KERNEL_BENCH_OUT=/out/bench.json
	tests=(TestLatency)
	run_sanity=0
	;;
*) run_sanity=0 ;;
esac

# Test names starting with TestCrypt are in test_kernel_crypt.py (encrypted volumes).
kernel_tests=()
crypt_tests=()
for x in "${tests[@]}"; do
	case $x in
	TestCrypt*) crypt_tests+=("$x") ;;
	*) kernel_tests+=("$x") ;;
	esac
done

if [ "$run_python" -eq 1 ] && { [ ${#tests[@]} -eq 0 ] || [ ${#kernel_tests[@]} -gt 0 ]; }; then
	t=$(now_us)
	if timeout 1200 /usr/bin/python3 tests/kernel/test_kernel.py -v "${kernel_tests[@]}"; then
		summary "test_kernel.py: ok in $(secs "$t") s"
	else
		summary "test_kernel.py: FAILED in $(secs "$t") s"
		fail=1
	fi
fi

if [ "$run_python" -eq 1 ] && { [ ${#tests[@]} -eq 0 ] || [ ${#crypt_tests[@]} -gt 0 ]; }; then
	t=$(now_us)
	if timeout 900 /usr/bin/python3 tests/kernel/test_kernel_crypt.py -v "${crypt_tests[@]}"; then
		summary "test_kernel_crypt.py (LUKS2): ok in $(secs "$t") s"
	else
		summary "test_kernel_crypt.py (LUKS2): FAILED in $(secs "$t") s"
		fail=1
	fi
fi

if [ "$run_sanity" -eq 1 ]; then
	t=$(now_us)
	sanity=$(ls "$B"/tools/csi-sanity-* 2>/dev/null | head -1)
	if [ -z "$sanity" ]; then
		summary "csi-sanity: not built (make tools)"
		fail=1
	elif SANITY_MOUNTER=krbd SANITY_FOCUS="Node Service" CSI_SANITY=/repo/$sanity \
		timeout 900 tests/sanity.sh; then
		summary "csi-sanity Node specs (mounter krbd): ok in $(secs "$t") s"
	else
		summary "csi-sanity Node specs (mounter krbd): FAILED in $(secs "$t") s"
		fail=1
	fi
fi

# Nothing of ours may be left mapped.
if ls /sys/bus/rbd/devices/ 2>/dev/null | grep -q .; then
	summary "rbd mappings left: $(ls /sys/bus/rbd/devices/)"
	fail=1
fi
for p in /sys/block/nbd*/pid; do
	[ -e "$p" ] || continue
	summary "nbd device left connected: $p"
	fail=1
done
if grep -F "$RBDCSI_TEST_KEY" -rlq /out/logs "$CEPH_DIR/log" 2>/dev/null; then
	summary "the cephx key appears in a log"
	fail=1
fi
# No ceph-down: the cluster lives in the guest's memory and goes with it (saves a minute).
summary "runner total $(secs "$T0") s"
exit "$fail"
