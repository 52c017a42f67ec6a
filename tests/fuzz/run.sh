#!/usr/bin/env bash
# Runs each libFuzzer binary given as argument (built by `make fuzz`: clang -fsanitize=fuzzer,
# address,undefined) for FUZZ_RUNS inputs, starting from its corpus tests/fuzz/corpus/<name>.
# New inputs go to build/fuzz/corpus/<name> (not committed), crashes and leaks to
# build/fuzz/artifacts/<name>-*. Prints one line per target (inputs, seconds, corpus size,
# result) and fails if any target found something.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build/fuzz}
RUNS=${FUZZ_RUNS:-1000000}
now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T0=$(now_us)
found=0
summary=()
mkdir -p "$B/artifacts"
for f in "$@"; do
	n=$(basename "$f")
	n=${n#fuzz_}
	work=$B/corpus/$n
	log=$B/artifacts/$n.log
	mkdir -p "$work"
	t=$(now_us)
	echo "  FUZZ    $n: $RUNS inputs (log: $log)"
	# -max_len: the request handlers' inputs are small messages; the parsers read <= 1 MiB but
	# their interesting inputs are short. -timeout: one input may not take 10 s.
	nice -n 10 "$f" -runs="$RUNS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$B/artifacts/$n-" "$work" \
		"tests/fuzz/corpus/$n" >"$log" 2>&1
	rc=$?
	secs=$(printf '%.1f' "$(($(now_us) - t))e-6")
	done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	result=ok
	if [ "$rc" -ne 0 ]; then
		result="FOUND something (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log")"
		found=$((found + 1))
	fi
	summary+=("$(printf '%-14s %9s inputs %8ss  corpus %5s files  %s' "$n" "${done_runs:-?}" \
		"$secs" "$(find "$work" -type f | wc -l)" "$result")")
done
echo
printf '  %s\n' "${summary[@]}"
printf 'fuzz: %d targets, %d found something, total %.1fs\n' "$#" "$found" \
	"$(($(now_us) - T0))e-6"
[ "$found" -eq 0 ]
