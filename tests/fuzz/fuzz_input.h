/* fuzz_input.h - reading a libFuzzer input as a little-endian byte stream (zeros past its end). */
#ifndef EMBER_FUZZ_INPUT_H
#define EMBER_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/*
 * The device harnesses (fuzz_virtio_*.c) read their records with these: each
 * call takes the next bytes of the input, and an input that ran out reads as
 * zeros, so a harness never checks lengths and every prefix of an input is an
 * input too.  No global state.
 */
struct in {
	const uint8_t *p;
	size_t n; /* bytes left */
};

static inline uint8_t u8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t u16(struct in *in)
{
	uint16_t lo = u8(in);

	return (uint16_t)(lo | u8(in) << 8);
}

static inline uint32_t u32(struct in *in)
{
	uint32_t lo = u16(in);

	return lo | (uint32_t)u16(in) << 16;
}

static inline uint64_t u64(struct in *in)
{
	uint64_t lo = u32(in);

	return lo | (uint64_t)u32(in) << 32;
}

#endif
