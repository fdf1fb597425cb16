#!/bin/sh
# Install the Debian packages ember's build and tests need, if any is missing.
# `deps.sh bench` adds what the benchmarks need (QEMU to compare with, matplotlib to plot),
# `deps.sh linux` the tools to unpack Debian's kernels, `deps.sh kvm-vm` the KVM test VM's QEMU.
set -e
PKGS="gcc make libc6-dev linux-libc-dev pkg-config liburing-dev libslirp-dev libslirp0 libhttp-parser-dev libjansson-dev libseccomp-dev curl python3 python3-pytest clang libclang-rt-14-dev pciutils iproute2 acpica-tools seabios qemu-system-common"
# qemu-system-common: qemu-storage-daemon, the vhost-user block backend the tests use.
[ "${1:-}" = bench ] && PKGS="qemu-system-x86 python3-matplotlib time"
[ "${1:-}" = linux ] && PKGS="lz4 zstd xz-utils e2fsprogs"
# The KVM test VM (scripts/kvm-vm), where /dev/kvm is missing: QEMU; its kernel and busybox
# are downloaded with apt-get download and unpacked, never installed.
[ "${1:-}" = kvm-vm ] && PKGS="qemu-system-x86"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "ember: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
