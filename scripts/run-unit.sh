#!/bin/sh
# Run every unit-test binary given, print each one's output and one total line.
passed=0; failed=0; broken=0
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out" | sed "s|^|$(basename "$t"): |"
	p=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -n1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -n1)
	if [ -z "$p" ]; then
		echo "$(basename "$t"): exited $rc without a summary line"
		broken=$((broken + 1)); continue
	fi
	passed=$((passed + p)); failed=$((failed + f))
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && broken=$((broken + 1))
done
echo "${UNIT_LABEL:-unit}: $passed passed, $((failed + broken)) failed"
[ "$failed" -eq 0 ] && [ "$broken" -eq 0 ]
