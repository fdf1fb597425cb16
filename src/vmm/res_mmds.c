/* res_mmds.c - MMDS in the configuration model: PUT /mmds/config's checks, the data store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/resources.h"

struct mmds *res_mmds_store(struct resources *r)
{
	if (!r->mmds.store && mmds_create(r->mmds.size_limit, &r->mmds.store) < 0)
		return NULL;
	return r->mmds.store;
}

/* RFC 3927 (Firecracker's is_link_local_valid): 169.254.1.0 to 169.254.254.255. */
static bool link_local(uint32_t a)
{
	uint32_t third = (a >> 8) & 0xff;

	return (a >> 16) == 0xa9fe && third != 0 && third != 255;
}

/* Firecracker's set_mmds_network_stack_config, in its order: address, empty list, ids. */
int res_set_mmds_config(struct resources *r, const struct res_mmds_config *c, struct err *e)
{
	struct res_mmds *m = &r->mmds;
	char ids[VM_MAX_NETS][RES_ID_MAX + 1];
	unsigned int i, j, n = 0;

	if (c->has_ipv4 && !link_local(c->ipv4))
		return err_set(e, EINVAL, RES_MSG_MMDS_BAD_IPV4);
	if (!c->nifaces)
		return err_set(e, EINVAL, RES_MSG_MMDS_EMPTY_IFACES);
	for (i = 0; i < c->nifaces; i++)
		if (!res_find_net(r, c->ifaces[i]))
			return err_set(e, EINVAL, RES_MSG_MMDS_BAD_IFACE);
	/* Kept in the interfaces' own order (GET /vm/config lists them so), once each. */
	for (j = 0; j < r->nnets; j++)
		for (i = 0; i < c->nifaces; i++)
			if (!strcmp(c->ifaces[i], r->nets[j].id)) {
				snprintf(ids[n++], RES_ID_MAX + 1, "%s", r->nets[j].id);
				break;
			}
	if (!res_mmds_store(r))
		return err_set(e, ENOMEM, "out of memory");
	memcpy(m->ifaces, ids, sizeof(ids));
	m->nifaces = n;
	m->ipv4 = c->has_ipv4 ? c->ipv4 : MMDS_DEFAULT_IPV4;
	m->version = c->version;
	m->imds_compat = c->imds_compat;
	m->configured = true;
	m->store->version = c->version;
	m->store->imds_compat = c->imds_compat;
	return 0;
}

void res_mmds_config_clear(struct res_mmds_config *c)
{
	unsigned int i;

	for (i = 0; i < c->nifaces; i++)
		free(c->ifaces[i]);
	free(c->ifaces);
	memset(c, 0, sizeof(*c));
}

bool res_mmds_on(const struct resources *r, const char *id)
{
	unsigned int i;

	for (i = 0; r->mmds.configured && i < r->mmds.nifaces; i++)
		if (!strcmp(r->mmds.ifaces[i], id))
			return true;
	return false;
}

void res_mmds_clear(struct res_mmds *m)
{
	mmds_free(m->store);
	memset(m, 0, sizeof(*m));
}
