#!/usr/bin/env bash
# Runs the cmocka unit test binaries given as arguments; each prints its own cmocka summary.
# Ends with "unit: N passed, N failed (binaries), N tests skipped". Tests that need Ceph or root
# skip themselves, unless RBDCSI_REQUIRE_CEPH=1 / RBDCSI_REQUIRE_ROOT=1 (make check sets them):
# then such a skip fails its test (tests/unit/require.h).
set -uo pipefail
pass=0
fail=0
skipped=0
failed=()
out=$(mktemp /tmp/rbdcsi-unit.XXXXXX)
trap 'rm -f "$out"' EXIT
for t in "$@"; do
	echo "  UNIT    ${t#*/tests/unit/}"
	if "$t" 2>&1 | tee "$out"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed+=("$t")
	fi
	n=$(sed -n 's/^ \([0-9]*\) SKIPPED TEST(S)$/\1/p' "$out")
	skipped=$((skipped + ${n:-0}))
done
[ "${#failed[@]}" -eq 0 ] || printf 'FAILED: %s\n' "${failed[@]}"
echo "unit: ${pass} passed, ${fail} failed (binaries), ${skipped} tests skipped"
echo "      (RBDCSI_REQUIRE_CEPH=${RBDCSI_REQUIRE_CEPH:-0} RBDCSI_REQUIRE_ROOT=${RBDCSI_REQUIRE_ROOT:-0})"
[ "$fail" -eq 0 ]
