#!/bin/sh
# Assemble a Linux guest for ember from Debian packages only (docs/linux-guest.md).
#
#   scripts/linux-guest.sh [OUTDIR]        default OUTDIR: build/linux
#
# Writes OUTDIR/bzImage (Debian's cloud kernel), OUTDIR/vmlinux (the ELF kernel
# extracted from it), OUTDIR/initramfs.cpio.gz (busybox-static, the virtio
# modules, tests/linux/init), OUTDIR/config and OUTDIR/VERSION.  No root needed:
# packages are fetched with apt-get download and unpacked with dpkg-deb -x.
# Tools: apt-get, dpkg-deb, python3, and lz4 or zstd for kernels compressed with them.
#
# KERNEL_PKG overrides the kernel meta-package (default linux-image-cloud-amd64).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build/linux}
KERNEL_PKG=${KERNEL_PKG:-linux-image-cloud-amd64}
# ember's devices; the PCI/MMIO transports and the drivers.
MODULES="virtio_pci virtio_mmio virtio_blk virtio_net vmw_vsock_virtio_transport virtio_rng virtio_balloon virtio_pmem nd_pmem virtio_mem"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ember-linux.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# The meta-package depends on exactly one versioned image package.
VERSIONED=$(apt-cache depends "$KERNEL_PKG" | sed -n 's/^ *Depends: \(linux-image-[^ <>]*\)$/\1/p' | head -n1)
if [ -z "$VERSIONED" ]; then
    echo "linux-guest: cannot resolve $KERNEL_PKG (apt-get update?)" >&2
    exit 1
fi
echo "linux-guest: $KERNEL_PKG -> $VERSIONED, busybox-static"
(cd "$TMP" && apt-get download -q "$VERSIONED" busybox-static >/dev/null)
for deb in "$TMP"/*.deb; do
    dpkg-deb -x "$deb" "$TMP/root"
done

VMLINUZ=$(ls "$TMP"/root/boot/vmlinuz-* | head -n1)
KVER=${VMLINUZ##*/vmlinuz-}
MODDIR=$TMP/root/lib/modules/$KVER
cp "$VMLINUZ" "$OUT/bzImage"
cp "$TMP/root/boot/config-$KVER" "$OUT/config"
echo "$KVER" >"$OUT/VERSION"

python3 "$ROOT/tests/linux/extract-vmlinux.py" "$OUT/bzImage" "$OUT/vmlinux"

# Only modules the kernel does not build in (CONFIG_...=m) go into the initramfs.
WANT=
for m in $MODULES; do
    if find "$MODDIR" -name "$m.ko" -o -name "$(echo $m | tr _ -).ko" | grep -q .; then
        WANT="$WANT $m"
    fi
done
python3 "$ROOT/tests/linux/mkinitramfs.py" "$OUT/initramfs.cpio.gz" \
    "$TMP/root/bin/busybox" "$ROOT/tests/linux/init" "$MODDIR" "$KVER" $WANT

echo "linux-guest: kernel $KVER in $OUT:"
ls -l "$OUT/bzImage" "$OUT/vmlinux" "$OUT/initramfs.cpio.gz"
echo "boot it: build/release/ember --kernel $OUT/bzImage --initrd $OUT/initramfs.cpio.gz --mem 512 --cmdline 'console=ttyS0' --rng"
