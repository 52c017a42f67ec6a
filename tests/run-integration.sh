#!/usr/bin/env bash
# Integration tests against the real binary and a real throwaway Ceph:
#   1. the Python suites in tests/integration (grpcio),
#   2. csi-sanity (kubernetes-csi/csi-test) against the driver in "all" mode.
# Uses the cluster named by RBDCSI_TEST_* when set (make check starts one); otherwise starts its
# own with tests/ceph/ceph-up.sh and tears it down on exit.
#   B=build CSI_SANITY=/path/csi-sanity [ONLY=python|sanity] tests/run-integration.sh [test names]
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
B=${B:-build}
ONLY=${ONLY:-}
PY=/usr/bin/python3

own_ceph=""
cleanup() {
	local rc=$?
	if [ -n "$own_ceph" ]; then
		CEPH_DIR=$own_ceph tests/ceph/ceph-down.sh >/dev/null 2>&1 || true
	fi
	exit $rc
}
trap cleanup EXIT

if [ -z "${RBDCSI_TEST_MONITORS:-}" ]; then
	own_ceph=$(tests/ceph/ceph-up.sh)
	# shellcheck disable=SC1091
	. "$own_ceph/env"
fi
export RBDCSI_TEST_LOG_DIR=${RBDCSI_TEST_LOG_DIR:-$(mktemp -d /tmp/rbdcsi-logs.XXXXXX)}

# Python stubs from the pinned csi.proto (generated, never committed).
if [ ! -f "$TOP/build/py/csi_pb2_grpc.py" ] || [ "$TOP/build/proto/csi.proto" -nt "$TOP/build/py/csi_pb2.py" ]; then
	mkdir -p "$TOP/build/py"
	$PY -m grpc_tools.protoc -I"$TOP/build/proto" -I/usr/include --python_out="$TOP/build/py" \
		--grpc_python_out="$TOP/build/py" "$TOP/build/proto/csi.proto"
fi

rc=0
if [ -z "$ONLY" ] || [ "$ONLY" = python ]; then
	echo "== integration (python, real binary, real Ceph)"
	B=$B $PY tests/integration/run.py "$@" || rc=1
fi

if [ -z "$ONLY" ] || [ "$ONLY" = sanity ]; then
	echo "== csi-sanity"
	B=$B tests/sanity.sh || rc=1
fi
exit $rc
