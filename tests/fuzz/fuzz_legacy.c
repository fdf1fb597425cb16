/* fuzz_legacy.c - libFuzzer target: guest port I/O sequences against the UART, i8042 and CMOS. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "boot/layout.h"
#include "bus/bus.h"
#include "devices/legacy/cmos.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	int resets;
};

static void on_reset(void *opaque)
{
	((struct ctx *)opaque)->resets++;
}

/*
 * Each 4-byte record is one guest access: byte 0 picks the port (and whether
 * host console input is injected instead), byte 1 the size and direction,
 * bytes 2-3 the value.  Everything goes through the real PIO bus, as a vCPU's
 * exit would.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t ports[] = {0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe,
	                                 0x3ff, 0x60,  0x64,  0x70,  0x71,  0x61,  0x3f7};
	static const unsigned int sizes[] = {1, 2, 4, 8};
	struct rcu rcu;
	struct bus pio;
	struct rcu_reader *rd;
	struct serial s;
	struct i8042 k;
	struct cmos c;
	struct mem_layout ml;
	struct ctx cx = {0};
	int irq = eventfd(0, EFD_NONBLOCK), out = eventfd(0, EFD_NONBLOCK);
	int devnull = -1;
	size_t i;

	if (irq < 0 || out < 0)
		abort();
	mem_layout_init(&ml, 256ull << 20);
	if (rcu_init(&rcu) || bus_init(&pio, "pio", &rcu))
		abort();
	rd = rcu_reader_register(&rcu);
	if (serial_init(&s, devnull, irq) || i8042_init(&k, on_reset, &cx, irq) ||
	    cmos_init(&c, &ml, 2))
		abort();
	serial_set_rx_notify(&s, out);
	if (bus_register(&pio, 0x3f8, 8, &serial_ops, &s, NULL) ||
	    bus_register(&pio, 0x60, 1, &i8042_data_ops, &k, NULL) ||
	    bus_register(&pio, 0x64, 1, &i8042_cmd_ops, &k, NULL) ||
	    bus_register(&pio, 0x70, 2, &cmos_ops, &c, NULL))
		abort();

	for (i = 0; i + 4 <= size; i += 4) {
		uint16_t port = ports[data[i] % (sizeof(ports) / sizeof(ports[0]))];
		unsigned int sz = sizes[data[i + 1] & 3];
		uint64_t v = (uint64_t)data[i + 2] | (uint64_t)data[i + 3] << 8, got;

		if (data[i] >= 0xf0) {
			serial_input(&s, &data[i + 1], 3);
		} else if (data[i] >= 0xe0) {
			i8042_send_ctrl_alt_del(&k);
		} else if (data[i + 1] & 4) {
			bus_write(&pio, rd, port, sz, v);
		} else {
			bus_read(&pio, rd, port, sz, &got);
			if (sz < 8 && got >> (8 * sz))
				abort(); /* a read returns only `size` bytes */
		}
	}

	bus_unregister(&pio, 0x70, NULL);
	bus_unregister(&pio, 0x64, NULL);
	bus_unregister(&pio, 0x60, NULL);
	bus_unregister(&pio, 0x3f8, NULL);
	cmos_destroy(&c);
	i8042_destroy(&k);
	serial_destroy(&s);
	rcu_reader_unregister(&rcu, rd);
	bus_destroy(&pio);
	rcu_destroy(&rcu);
	close(irq);
	close(out);
	return 0;
}
