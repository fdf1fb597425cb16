#!/bin/sh
# Seed fuzz_virtio_net with programs that reach the deep receive paths (see the format in the .c).
d=$1
z() { head -c "$1" /dev/zero; }
# rx buf 1000 B -> rx kick -> 3000-byte host frame -> loop (it waits) -> 3 more bufs -> kick -> reap
# (MRG_RXBUF + EVENT_IDX + INDIRECT, vnet-header backend, 256-entry rx ring).
{
	printf '\247'
	printf '\001\000\000\000\000\350\003\003'
	printf '\004\270\013'; z 3000
	printf '\005'
	printf '\001\000\000\001\000\350\003\001\000\000\002\000\350\003\001\000\000\003\000\350\003'
	printf '\003\005\006'
} >"$d/mrg-wait"
# Same without MRG_RXBUF and a bare-frame backend: the frame is dropped, the buffer reused.
{
	printf '\266'
	printf '\001\000\000\000\000\366\005\003'
	printf '\004\270\013'; z 3000
	printf '\004\100\000'; z 64
	printf '\005\006'
} >"$d/nomrg-drop"
# tx: a good frame, a runt, a readable+writable chain, kick, reap.
{
	printf '\207'
	printf '\000\000\000\000\001\144\000'
	printf '\000\000\000\000\001\010\000'
	printf '\000\001\000\000\001\144\000\000\000\000\100\000'
	printf '\002\006'
} >"$d/tx-mix"
