#!/bin/bash
# Runs every test suite of kproxy and adds up their results.
#
# Suites: C unit tests (plain, and again under AddressSanitizer/UBSan), a
# short libFuzzer run over the API client's parsers, BPF
# program tests, the API emulator's tests, the sandbox's self-test, and the
# end-to-end suite in network namespaces.  Each suite ends its output with
# "N passed, N failed[, N skipped]"; a suite that dies without that line
# counts as one failure.  The run ends with the totals on one line, and
# whatever happens, every sandbox namespace and process a test made is
# removed on exit.
#
#   SUITES="unit e2e" test/run.sh     run some suites only
#   TEST_FILTER=clusterip test/run.sh run only tests whose name has this
set -u
cd "$(dirname "$0")/.." || exit 1

SUITES=${SUITES:-"unit unit-san fuzz bpf apiserver sandbox e2e"}
E2E_MODES=${E2E_MODES:-"nftables ebpf"}
total_pass=0 total_fail=0 total_skip=0
summary=()

cleanup() {
	python3 test/lib/sandbox.py cleanup >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_suite NAME COMMAND...: runs the command, echoing its output, and adds
# its closing counts to the totals.
run_suite() {
	local name=$1 out line p f s rc
	shift
	echo "=== $name"
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	rm -f "$out"
	if [ -z "$line" ]; then
		echo "--- $name: no result line (exit status $rc): counted as one failure"
		p=0 f=1 s=0
	else
		p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
		f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
		s=0
		if echo "$line" | grep -q skipped; then
			s=$(echo "$line" | sed -E 's/.* ([0-9]+) skipped.*/\1/')
		fi
		if [ "$f" = 0 ] && [ "$rc" != 0 ]; then
			echo "--- $name: exit status $rc with no failed test: counted as one failure"
			f=1
		fi
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	total_skip=$((total_skip + s))
	summary+=("$(printf '%-22s %s passed, %s failed, %s skipped' "$name" "$p" "$f" "$s")")
}

for suite in $SUITES; do
	case $suite in
	unit | unit-san)
		dir=build/test/$suite
		for t in "$dir"/test_*; do
			[ -x "$t" ] || continue
			ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
				run_suite "$suite/$(basename "$t")" "$t" ${TEST_FILTER:+"$TEST_FILTER"}
		done
		;;
	bpf)
		for t in build/test/bpf/test_*; do
			[ -x "$t" ] || continue
			run_suite "bpf/$(basename "$t")" "$t" ${TEST_FILTER:+"$TEST_FILTER"}
		done
		;;
	fuzz)
		# Corpus replay and a short run per target; make fuzz runs long.
		run_suite fuzz make --no-print-directory -s fuzz-smoke \
			FUZZ_SMOKE_SECONDS="${FUZZ_SMOKE_SECONDS:-5}"
		;;
	apiserver)
		run_suite apiserver python3 test/lib/harness.py test/apiserver/test_apiserver.py
		;;
	sandbox)
		run_suite sandbox python3 test/lib/harness.py test/lib/test_sandbox.py
		;;
	e2e)
		for mode in $E2E_MODES; do
			KPROXY_MODE=$mode run_suite "e2e/$mode" python3 test/lib/harness.py \
				--label "$mode" --timeout 180 test/e2e/test_*.py
		done
		;;
	*)
		echo "unknown suite $suite" >&2
		total_fail=$((total_fail + 1))
		;;
	esac
done

echo
echo "=== summary"
for s in "${summary[@]}"; do
	echo "$s"
done
echo
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" = 0 ]
