#!/usr/bin/env bash
# The README demo: a throwaway local Ceph, the driver, and a volume taken through its whole life,
# each step printed with what it did. Leaves nothing behind (the cluster, mounts, loop devices and
# rbd-fuse processes all go at the end, also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
dir=""
cleanup() {
	local rc=$?
	if [ -n "$dir" ]; then
		echo "--- tearing down the throwaway Ceph"
		CEPH_DIR=$dir tests/ceph/ceph-down.sh >/dev/null 2>&1 || true
	fi
	exit $rc
}
trap cleanup EXIT
echo "--- starting a throwaway Ceph (1 mon + 1 memstore OSD on 127.0.0.1)"
dir=$(tests/ceph/ceph-up.sh 2>/dev/null)
# shellcheck disable=SC1091
. "$dir/env"
export CEPH_DIR CEPH_CONF RBDCSI_TEST_MONITORS RBDCSI_TEST_USER RBDCSI_TEST_KEY RBDCSI_TEST_POOL
if [ ! -f build/py/csi_pb2_grpc.py ]; then
	mkdir -p build/py
	/usr/bin/python3 -m grpc_tools.protoc -Ibuild/proto -I/usr/include --python_out=build/py \
		--grpc_python_out=build/py build/proto/csi.proto
fi
B=$B /usr/bin/python3 tests/demo.py
