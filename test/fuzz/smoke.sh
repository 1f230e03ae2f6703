#!/bin/bash
# The short fuzzing run of `make test` (through `make fuzz-smoke`): for each
# libFuzzer target, first every input of its corpus in test/fuzz/corpus/
# (seeds and the regression inputs of crashes found earlier) once, then
# FUZZ_SMOKE_SECONDS of fuzzing from that corpus.  Each step prints
# "PASS name (Ns)" or "FAIL name" with the end of the fuzzer's output, and
# the run ends with "N passed, N failed" as every suite does.  New inputs are
# kept in a temporary directory that is removed afterwards; a crashing input
# is kept in $BUILD/fuzz/crashes/<target>/ for the report.
#
#   BUILD=build FUZZ_SMOKE_SECONDS=10 test/fuzz/smoke.sh [TARGET...]
set -u
cd "$(dirname "$0")/../.." || exit 1

BUILD=${BUILD:-build}
SECONDS_EACH=${FUZZ_SMOKE_SECONDS:-10}
# "target=len ..." from fuzz.mk; 4096 when not given.
MAX_LEN=${FUZZ_MAX_LEN:-}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_decode fuzz_watch fuzz_kubeconfig fuzz_yaml)

passed=0 failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

max_len_of() {
	local kv
	for kv in $MAX_LEN; do
		if [ "${kv%%=*}" = "$1" ]; then
			echo "${kv#*=}"
			return
		fi
	done
	echo 4096
}

# result NAME STATUS START LOG: prints the line and counts it.
result() {
	local name=$1 rc=$2 start=$3 log=$4 took
	took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	if [ "$rc" = 0 ]; then
		echo "PASS $name (${took}s)"
		passed=$((passed + 1))
	else
		echo "FAIL $name (exit status $rc, ${took}s)"
		# The input that failed (replay), then what went wrong.
		grep -E '^Running:' "$log" | tail -n 1 | sed 's/^/    /'
		grep -E 'ERROR|SUMMARY|runtime error|check failed|Test unit written' \
			"$log" | tail -n 10 | sed 's/^/    /'
		tail -n 15 "$log" | sed 's/^/    | /'
		failed=$((failed + 1))
	fi
}

for t in "${targets[@]}"; do
	bin=$BUILD/fuzz/$t
	corpus=test/fuzz/corpus/$t
	crashes=$BUILD/fuzz/crashes/$t
	if [ ! -x "$bin" ]; then
		echo "FAIL $t (not built: $bin)"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$crashes"

	# Every corpus input once, each as its own run.
	start=$(date +%s.%N)
	log=$work/$t.replay.log
	mapfile -t inputs < <(find "$corpus" -type f 2>/dev/null | sort)
	if [ ${#inputs[@]} -eq 0 ]; then
		echo "no inputs in $corpus" >"$log"
		rc=1
	else
		"$bin" -timeout=10 -rss_limit_mb=2048 "${inputs[@]}" >"$log" 2>&1
		rc=$?
	fi
	result "$t corpus (${#inputs[@]} inputs)" "$rc" "$start" "$log"

	# A short run from the corpus.
	start=$(date +%s.%N)
	log=$work/$t.fuzz.log
	mkdir -p "$work/$t"
	dict=()
	[ -f "test/fuzz/dict/$t.dict" ] && dict=(-dict="test/fuzz/dict/$t.dict")
	"$bin" -max_total_time="$SECONDS_EACH" -max_len="$(max_len_of "$t")" -timeout=10 \
		-rss_limit_mb=2048 "${dict[@]}" -artifact_prefix="$crashes/" \
		"$work/$t" "$corpus" >"$log" 2>&1
	rc=$?
	result "$t fuzz ${SECONDS_EACH}s" "$rc" "$start" "$log"
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
