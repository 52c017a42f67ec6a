# shellcheck shell=bash disable=SC2034
# Sourced by the check scripts that print one line per check and end with "N passed, M failed"
# (tests/deploy, tests/image, tests/monitoring): the counters and the two line printers.
passed=0
failed=0
pass() {
	echo "PASS  $*"
	passed=$((passed + 1))
}
fail() {
	echo "FAIL  $*"
	failed=$((failed + 1))
}
