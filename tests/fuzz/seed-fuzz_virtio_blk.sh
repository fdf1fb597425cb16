#!/bin/sh
# Seed fuzz_virtio_blk with one well-formed request of each type (format: fuzz_virtio_blk.c).
# Byte 0x1f: every feature, 256-entry queue; then chain records, a kick (01) and a reap (02).
d=$1
# read 4 sectors at sector 1: header(IN, 1), writable 4 sectors, status
printf '\037\000\000\002\000\000\000\001\002\004\003\001\002' >"$d/seed-read"
# write 1 sector at sector 3 through an indirect table: header(OUT, 3), readable 512 bytes, status
{ printf '\037\000\000\002\001\000\001\003\001\001'; head -c 512 /dev/zero | tr '\000' '\245';
  printf '\003\001\002'; } >"$d/seed-write"
# flush, then GET_ID into 20 writable bytes (raw length 0x0014)
printf '\037\000\000\001\000\000\002\000\003\001\002' >"$d/seed-flush"
printf '\037\000\000\002\000\000\003\000\002\200\024\000\003\001\002' >"$d/seed-get-id"
# discard / write zeroes {sector 8, 4 sectors, flags 0 or UNMAP}
printf '\037\000\000\002\000\000\004\000\001\101\010\000\000\000\000\000\000\000\004\000\000\000\000\000\000\000\003\001\002' >"$d/seed-discard"
printf '\037\000\000\002\000\000\005\000\001\101\010\000\000\000\000\000\000\000\004\000\000\000\001\000\000\000\003\001\002' >"$d/seed-write-zeroes"
# read-only drive: a write
{ printf '\037\001\000\002\000\000\001\003\001\001'; head -c 512 /dev/zero; printf '\003\001\002'; } >"$d/seed-ro-write"
