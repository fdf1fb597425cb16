#!/bin/sh
# The KVM tiers need /dev/kvm.  Without it they fail loudly; they never skip.
if [ ! -c /dev/kvm ]; then
	echo "ember: /dev/kvm is missing: the guest tiers cannot run on this machine." >&2
	echo "ember: refusing to report success on unit tests alone." >&2
	exit 1
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "ember: /dev/kvm is not readable and writable by $(id -un): add yourself to group kvm." >&2
	exit 1
fi
