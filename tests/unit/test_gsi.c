/* test_gsi.c - unit tests for the GSI router's routing table (no VM: tests/kvm/test_gsi_kvm.c). */
#include <errno.h>
#include <stdlib.h>

#include "kvm/gsi.h"
#include "test.h"

static const struct kvm_irq_routing_entry *find_msi(const struct kvm_irq_routing *t, uint32_t gsi)
{
	unsigned int i;

	for (i = 0; i < t->nr; i++)
		if (t->entries[i].gsi == gsi && t->entries[i].type == KVM_IRQ_ROUTING_MSI)
			return &t->entries[i];
	return NULL;
}

TEST(legacy_table_is_kvms_default)
{
	struct gsi_router *g = calloc(1, sizeof(*g));
	struct kvm_irq_routing *t = gsi_routing_build(g);
	unsigned int i, k = 0;

	CHECK(t != NULL);
	if (!t)
		goto out;
	/* kvm_setup_default_irq_routing(): ROUTING_ENTRY2(0..15), ROUTING_ENTRY1(16..23). */
	CHECK_EQ(t->nr, 16 * 2 + 8);
	CHECK_EQ(t->flags, 0);
	for (i = 0; i < 24 && k < t->nr; i++) {
		const struct kvm_irq_routing_entry *r = &t->entries[k++];

		CHECK_EQ(r->gsi, i);
		CHECK_EQ(r->type, KVM_IRQ_ROUTING_IRQCHIP);
		CHECK_EQ(r->flags, 0);
		CHECK_EQ(r->u.irqchip.irqchip, KVM_IRQCHIP_IOAPIC);
		CHECK_EQ(r->u.irqchip.pin, i);
		if (i >= 16)
			continue;
		r = &t->entries[k++];
		CHECK_EQ(r->gsi, i);
		CHECK_EQ(r->type, KVM_IRQ_ROUTING_IRQCHIP);
		CHECK_EQ(r->u.irqchip.irqchip,
		         i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
		CHECK_EQ(r->u.irqchip.pin, i % 8);
	}
	CHECK_EQ(k, 40);
	/* GSI 2 keeps its PIC route, as in KVM's table. */
	CHECK_EQ(t->entries[5].gsi, 2);
	CHECK_EQ(t->entries[5].u.irqchip.irqchip, KVM_IRQCHIP_PIC_MASTER);
	CHECK_EQ(t->entries[5].u.irqchip.pin, 2);
out:
	free(t);
	free(g);
}

TEST(msi_entries_follow_used_and_valid)
{
	struct gsi_router *g = calloc(1, sizeof(*g));
	struct kvm_irq_routing *t;
	const struct kvm_irq_routing_entry *r;

	g->msi[30] = (struct gsi_msi_route){
	    .used = true, .valid = true, .addr = 0x12345678fee01004ull, .data = 0x4041};
	g->msi[24] =
	    (struct gsi_msi_route){.used = true, .valid = true, .addr = 0xfee00000, .data = 0x31};
	g->msi[25] = (struct gsi_msi_route){.used = true}; /* allocated, no message yet */
	g->msi[26] = (struct gsi_msi_route){.valid = true, .addr = 1}; /* stale, not used */
	g->msi[GSI_MAX - 1] = (struct gsi_msi_route){.used = true, .valid = true, .data = 7};
	t = gsi_routing_build(g);
	CHECK(t != NULL);
	if (!t)
		goto out;
	CHECK_EQ(t->nr, 40 + 3);
	/* In GSI order after the legacy part. */
	CHECK_EQ(t->entries[40].gsi, 24);
	CHECK_EQ(t->entries[41].gsi, 30);
	CHECK_EQ(t->entries[42].gsi, GSI_MAX - 1);
	r = find_msi(t, 30);
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ(r->u.msi.address_lo, 0xfee01004);
		CHECK_EQ(r->u.msi.address_hi, 0x12345678);
		CHECK_EQ(r->u.msi.data, 0x4041);
		CHECK_EQ(r->flags, 0);
	}
	r = find_msi(t, 24);
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ(r->u.msi.address_lo, 0xfee00000);
		CHECK_EQ(r->u.msi.address_hi, 0);
		CHECK_EQ(r->u.msi.data, 0x31);
	}
	CHECK(find_msi(t, 25) == NULL);
	CHECK(find_msi(t, 26) == NULL);
	free(t);

	/* Freed (cleared) entries disappear. */
	g->msi[30] = (struct gsi_msi_route){0};
	t = gsi_routing_build(g);
	CHECK(t != NULL);
	if (t) {
		CHECK_EQ(t->nr, 40 + 2);
		CHECK(find_msi(t, 30) == NULL);
		free(t);
	}
out:
	free(g);
}

/* A VM with the in-kernel irqchip and a router on it; fails loudly without /dev/kvm. */
int main(void)
{
	RUN(legacy_table_is_kvms_default);
	RUN(msi_entries_follow_used_and_valid);
	return test_summary();
}
