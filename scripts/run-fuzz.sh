#!/bin/sh
# Run each libFuzzer target for FUZZ_SECONDS from its seed corpus; fail on any crash.
set -e
secs=${FUZZ_SECONDS:-20}
passed=0; failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	corpus=build/fuzz/corpus/$name
	mkdir -p "$corpus"
	[ -d "tests/fuzz/seeds/$name" ] && cp -n tests/fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null || true
	[ -x "tests/fuzz/seed-$name.sh" ] && "tests/fuzz/seed-$name.sh" "$corpus"
	if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build/fuzz/$name-" \
		"$corpus" >"build/fuzz/$name.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build/fuzz/$name.log")
		echo "ok - $name: ${runs:-?} inputs in ${secs}s"
		passed=$((passed + 1))
	else
		echo "not ok - $name: crashed; see build/fuzz/$name.log and build/fuzz/$name-*"
		tail -n 30 "build/fuzz/$name.log"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
