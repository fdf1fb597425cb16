/* cpuid.c - CPUID policy: topology, APIC IDs and the hypervisor bit (see cpuid.h). */
#include "boot/cpuid.h"

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT        (1u << 28)

/* Number of bits needed to hold values 0..n-1. */
static unsigned int order_bits(unsigned int n)
{
	unsigned int b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static void topology_leaf(struct kvm_cpuid_entry2 *ent, unsigned int vcpu_id, unsigned int nvcpus,
                          unsigned int threads)
{
	/*
	 * Intel SDM vol. 2A, CPUID leaf 0Bh/1Fh: level 0 is SMT (`threads` per
	 * core), level 1 is core (nvcpus per package), higher levels invalid.
	 * EAX is the shift of the x2APIC ID to the next level's ID.
	 */
	ent->edx = vcpu_id;
	switch (ent->index) {
	case 0:
		ent->eax = order_bits(threads);
		ent->ebx = threads;
		ent->ecx = (1u << 8) | 0;
		break;
	case 1:
		ent->eax = order_bits(nvcpus);
		ent->ebx = nvcpus;
		ent->ecx = (2u << 8) | 1;
		break;
	default:
		ent->eax = 0;
		ent->ebx = 0;
		ent->ecx = ent->index & 0xff;
		break;
	}
}

void cpuid_apply_policy(struct kvm_cpuid2 *c, unsigned int vcpu_id, unsigned int nvcpus, bool smt)
{
	unsigned int threads = smt && nvcpus > 1 ? 2 : 1;
	unsigned int cores = nvcpus / threads;
	unsigned int i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *ent = &c->entries[i];

		switch (ent->function) {
		case 1:
			/* EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package. */
			ent->ebx =
			    (ent->ebx & 0x0000ffffu) | (vcpu_id << 24) | ((nvcpus & 0xffu) << 16);
			ent->ecx |= CPUID_1_ECX_HYPERVISOR;
			if (nvcpus > 1)
				ent->edx |= CPUID_1_EDX_HTT;
			else
				ent->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 4: {
			/* Deterministic cache parameters: EAX[31:26] cores per package - 1. */
			/* EAX[25:14] logical processors sharing this cache - 1: a core's threads
			 * share L1/L2, the package shares L3. */
			unsigned int level = (ent->eax >> 5) & 7;
			unsigned int sharing = level >= 3 ? nvcpus - 1 : threads - 1;

			if ((ent->eax & 0x1f) == 0)
				break; /* no more caches */
			ent->eax = (ent->eax & 0x3fffu) | (sharing << 14) | ((cores - 1) << 26);
			break;
		}
		case 0xb:
		case 0x1f:
			topology_leaf(ent, vcpu_id, nvcpus, threads);
			break;
		case 0x80000008:
			/* AMD: ECX[7:0] number of physical cores - 1. */
			ent->ecx = (ent->ecx & ~0xffu) | ((nvcpus - 1) & 0xff);
			break;
		case 0x8000001e:
			/* AMD: extended APIC ID; EBX[15:8] threads per compute unit - 1, EBX[7:0]
			 * compute unit ID. */
			ent->eax = vcpu_id;
			ent->ebx = (ent->ebx & ~0xffffu) | ((threads - 1) << 8) |
			           ((vcpu_id / threads) & 0xff);
			break;
		default:
			break;
		}
	}
}
