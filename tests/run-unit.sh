#!/usr/bin/env bash
# Runs the cmocka unit test binaries given as arguments; each prints its own cmocka summary.
# Ends with "unit: N passed, N failed" (binaries). Tests that need Ceph or root skip themselves.
set -u
pass=0
fail=0
failed=()
for t in "$@"; do
	echo "  UNIT    ${t#*/tests/unit/}"
	if "$t"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed+=("$t")
	fi
done
[ "${#failed[@]}" -eq 0 ] || printf 'FAILED: %s\n' "${failed[@]}"
echo "unit: ${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
