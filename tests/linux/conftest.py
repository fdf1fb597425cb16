"""The Linux tier: Debian's kernel on ember.  `make linux` builds the guest (scripts/linux-guest.sh)
and runs these through scripts/kvm-vm, so they run in the KVM test VM where /dev/kvm is missing.
See docs/linux-guest.md.
"""
