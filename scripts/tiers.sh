#!/bin/sh
# Run test tiers (make targets) one after another, then print each one's time and result.
# A failed tier does not stop the others; the exit status is 1 when any failed.
#
#   scripts/tiers.sh unit fuzz kvm-unit integration linux
summary=""
failed=0
total_start=$(date +%s)
for t in "$@"; do
	echo "== tier $t"
	start=$(date +%s)
	if ${MAKE:-make} -j"$(nproc)" --no-print-directory "$t"; then
		result=passed
	else
		result=FAILED
		failed=1
	fi
	secs=$(($(date +%s) - start))
	summary="$summary$(printf '%-12s %6d s  %s' "$t" "$secs" "$result")
"
done
echo "== tiers (the KVM tiers ran $(if [ -c /dev/kvm ] && [ "${EMBER_KVM_VM:-auto}" != always ]; then
	echo "on this machine's /dev/kvm"; else echo "in the KVM test VM"; fi))"
printf '%s' "$summary"
printf '%-12s %6d s\n' total $(($(date +%s) - total_start))
exit $failed
