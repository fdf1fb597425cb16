/* aml.h - a small ACPI Machine Language writer (ACPI 6.5 §20) for ember's generated DSDT. */
#ifndef EMBER_BOOT_ACPI_AML_H
#define EMBER_BOOT_ACPI_AML_H

/*
 * An `struct aml` is a growable byte buffer with a sticky error: every
 * emitter appends to it and, on the first failure (out of memory, a bad
 * name, an unbalanced package), records -errno and ignores further calls.
 * The caller checks aml_error() once at the end, so building a whole DSDT is
 * a straight-line sequence of calls with no error plumbing.
 *
 * Objects with a PkgLength (Scope, Device, Method, If, Else, Buffer,
 * Package) are opened with an aml_*_begin() call that returns a mark and
 * closed with aml_end(mark): the body is written in between, and aml_end()
 * inserts the shortest PkgLength encoding (§20.2.4) in front of it.  Marks
 * nest like parentheses.
 *
 * Resource templates (§6.4) are built the same way: aml_res_begin() opens a
 * Buffer, the aml_res_*() calls append descriptors, and aml_res_end() adds
 * the End Tag (checksum 0: "treated as if the checksum operation succeeded",
 * §6.4.2.9) and closes the Buffer.
 *
 * Names (aml_name()) are ASL-style paths: "\\_SB.PCI0", "^PCI0", "_HID",
 * "VR1"; each segment is 1-4 characters ([A-Z_] then [A-Z0-9_]) and is
 * padded with '_' to four (§20.2.2).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len, cap;
	int err;            /* 0, or the first -errno */
	unsigned int depth; /* open packages, to catch unbalanced aml_end() */
};

/* An empty buffer; nothing is allocated until the first byte. */
void aml_init(struct aml *a);
/* Free the buffer; `a` may be reused after aml_init(). */
void aml_free(struct aml *a);
/* 0, or the first -errno: -ENOMEM, -EINVAL (bad name, argument or unbalanced marks). */
int aml_error(const struct aml *a);

/* Raw bytes. */
void aml_byte(struct aml *a, uint8_t b);
void aml_bytes(struct aml *a, const void *p, size_t n);

/*
 * PkgLength encoding (§20.2.4) of a package whose body (everything after
 * the PkgLength) is `body` bytes: writes 1-4 bytes to out and returns how
 * many, or 0 when the package would exceed 2^28 - 1 bytes.
 */
unsigned int aml_pkglen_encode(size_t body, uint8_t out[4]);

/* Close the object opened by the aml_*_begin() call that returned `mark`. */
void aml_end(struct aml *a, size_t mark);

/* NameString (§20.2.2): root and parent prefixes, NullName, Dual/MultiNamePrefix. */
void aml_name(struct aml *a, const char *path);

/* Integer (§20.2.3): ZeroOp, OneOp, or the shortest of Byte/Word/DWord/QWordPrefix. */
void aml_int(struct aml *a, uint64_t v);
/* OnesOp: all bits set. */
void aml_ones(struct aml *a);
/* A DWordConst always, as ASL's EisaId("PNP0A08") compiles (§19.6.35); -EINVAL if malformed. */
void aml_eisaid(struct aml *a, const char *id);
/* String (§20.2.3): StringPrefix, ASCII characters, NUL. */
void aml_string(struct aml *a, const char *s);
/* Buffer (§20.2.5.4) holding n bytes. */
void aml_buffer(struct aml *a, const void *p, size_t n);
/* ToUUID("33DB4D5B-1FF7-401C-9657-7441C03DD766") as a 16-byte Buffer (§19.6.142). */
void aml_uuid(struct aml *a, const char *uuid);

/* Package(n) { ... } (§20.2.5.4): the caller appends n data objects, then aml_end(). */
size_t aml_package_begin(struct aml *a, uint8_t n);
/* Name(path, <object>): the caller appends the object (§20.2.5.1). */
void aml_name_decl(struct aml *a, const char *path);
/* Scope(path) { ... } (§20.2.5.1). */
size_t aml_scope_begin(struct aml *a, const char *path);
/* Device(path) { ... } (§20.2.5.2). */
size_t aml_device_begin(struct aml *a, const char *path);
/* Method(path, nargs, Serialized|NotSerialized) { ... } (§20.2.5.2); nargs <= 7. */
size_t aml_method_begin(struct aml *a, const char *path, unsigned int nargs, bool serialized);
/* If (predicate) { ... }: the caller appends the predicate, then the body (§20.2.5.3). */
size_t aml_if_begin(struct aml *a);
/* Else { ... }, directly after an If's aml_end() (§20.2.5.3). */
size_t aml_else_begin(struct aml *a);

/* Terms (§20.2.5.3, §20.2.5.4, §20.2.6): operands follow in the order of the ASL. */
void aml_return(struct aml *a);                /* Return(<operand>) */
void aml_arg(struct aml *a, unsigned int n);   /* Arg0..Arg6 */
void aml_local(struct aml *a, unsigned int n); /* Local0..Local7 */
void aml_store(struct aml *a);                 /* Store(<src>, <dst>) */
void aml_and(struct aml *a);                   /* And(<a>, <b>, <target>) */
void aml_or(struct aml *a);                    /* Or(<a>, <b>, <target>) */
void aml_lequal(struct aml *a);                /* LEqual(<a>, <b>) */
void aml_lnot(struct aml *a);                  /* LNot(<a>) */
void aml_notify(struct aml *a);                /* Notify(<object>, <value>) */
/* CreateDWordField(<buffer>, <byte index>, name): appends the opcode; the caller the
 * two operands; then aml_name(name). */
void aml_create_dword_field(struct aml *a);

/* Resource template (§6.4): a Buffer of descriptors ending in an End Tag. */
size_t aml_res_begin(struct aml *a);
void aml_res_end(struct aml *a, size_t mark);

/* General flags of the address space descriptors (§6.4.3.5, tables 6.44-6.47). */
#define AML_RES_CONSUMER 0x01u /* ResourceConsumer (else ResourceProducer) */
#define AML_RES_MINFIXED 0x04u
#define AML_RES_MAXFIXED 0x08u
/* Memory type-specific flags (§6.4.3.5.4, table 6.50). */
#define AML_MEM_RW           0x01u
#define AML_MEM_CACHEABLE    0x02u
#define AML_MEM_WRITECOMBINE 0x04u
#define AML_MEM_PREFETCHABLE 0x06u

/* IO(Decode16, min, max, align, len) (§6.4.2.5). */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() {irq} (§6.4.2.1, the 2-byte form: edge, active high, exclusive); irq < 16. */
void aml_res_irq_noflags(struct aml *a, unsigned int irq);
/* WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, n)
 * (§6.4.3.5.3). */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
/* WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, n). */
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
/* DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, <mem flags>, 0, min, max, 0, n)
 * (§6.4.3.5.2); size > 0 and base + size - 1 must fit in 32 bits. */
void aml_res_dword_mem(struct aml *a, uint8_t mem_flags, uint64_t base, uint64_t size);
/* QWordMemory(...) likewise (§6.4.3.5.1). */
void aml_res_qword_mem(struct aml *a, uint8_t mem_flags, uint64_t base, uint64_t size);
/* Memory32Fixed(ReadWrite, base, size) (§6.4.3.4). */
void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t size);

/* Extended interrupt flags (§6.4.3.6, table 6.57). */
#define AML_IRQ_EDGE       0x02u /* else level */
#define AML_IRQ_ACTIVE_LOW 0x04u /* else active high */
#define AML_IRQ_SHARED     0x08u /* else exclusive */
/* Interrupt(ResourceConsumer, <flags>) {gsi} (§6.4.3.6). */
void aml_res_interrupt(struct aml *a, uint8_t flags, uint32_t gsi);

#endif
