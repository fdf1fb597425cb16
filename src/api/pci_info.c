/* pci_info.c - GET /pci: ember's PCI topology, configuration space, slots and MSI routes. */
#include "api/api_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "pci/dump.h"
#include "pci/pci.h"

json_t *api_pci_topology(struct ctl *c)
{
	struct pci_host *h = vm_pci_host(c->vm);
	json_t *arr = json_array();
	unsigned int bus, devfn;
	bool scan[256] = {[0] = true};
	char *dump = NULL;
	size_t dump_len = 0;
	FILE *f;

	for (bus = 0; bus < 256 && arr; bus++) {
		if (!scan[bus])
			continue;
		for (devfn = 0; devfn < 256; devfn++) {
			uint32_t id = pci_host_cfg_read(h, (uint8_t)bus, (uint8_t)devfn, 0, 4);
			uint32_t cls, hdr;
			struct pci_dev *d;
			char bdf[16];

			if ((id & 0xffff) == 0xffff)
				continue;
			cls = pci_host_cfg_read(h, (uint8_t)bus, (uint8_t)devfn, 8, 4) >> 8;
			hdr = (pci_host_cfg_read(h, (uint8_t)bus, (uint8_t)devfn, 0xc, 4) >> 16) &
			      0x7f;
			d = pci_host_find(h, (uint8_t)bus, (uint8_t)devfn);
			snprintf(bdf, sizeof(bdf), "0000:%02x:%02x.%u", bus, devfn >> 3, devfn & 7);
			json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "bdf", bdf, "name",
			                      d && d->name ? d->name : "", "vendor_id", "",
			                      "device_id", "", "class", "");
			char hex[16];

			snprintf(hex, sizeof(hex), "0x%04x", id & 0xffff);
			json_object_set_new(o, "vendor_id", json_string(hex));
			snprintf(hex, sizeof(hex), "0x%04x", id >> 16);
			json_object_set_new(o, "device_id", json_string(hex));
			snprintf(hex, sizeof(hex), "0x%06x", cls);
			json_object_set_new(o, "class", json_string(hex));
			if (hdr == 1) {
				uint32_t buses =
				    pci_host_cfg_read(h, (uint8_t)bus, (uint8_t)devfn, 0x18, 4);
				unsigned int sec = (buses >> 8) & 0xff, sub = (buses >> 16) & 0xff,
				             b;

				json_object_set_new(o, "secondary_bus", json_integer(sec));
				json_object_set_new(o, "subordinate_bus", json_integer(sub));
				for (b = sec; b && b <= sub && b < 256; b++)
					scan[b] = true;
			}
			json_array_append_new(arr, o);
		}
	}
	f = open_memstream(&dump, &dump_len);
	if (f) {
		pci_host_dump(h, f);
		fclose(f);
	}
	json_t *out = json_pack("{s:o, s:s}", "devices", arr ? arr : json_array(), "config_space",
	                        dump ? dump : "");
	json_t *slots = json_array();
	unsigned int i;

	free(dump);
	for (i = 0; slots && i < vm_slot_count(c->vm); i++) {
		static const char *const states[] = {"empty", "occupied", "removing"};
		struct vm_slot_info sl;
		char bdf[32];

		vm_slot_get(c->vm, i, &sl);
		snprintf(bdf, sizeof(bdf), "0000:00:%02x.0", sl.device_nr);
		json_array_append_new(slots,
		                      json_pack("{s:I, s:s, s:s, s:o}", "port", (json_int_t)sl.port,
		                                "bdf", bdf, "state", states[sl.state], "device",
		                                sl.device ? json_string(sl.device) : json_null()));
	}
	if (out) {
		json_object_set_new(out, "slots", slots ? slots : json_array());
		json_object_set_new(out, "gsi_routes", json_integer(vm_msi_route_count(c->vm)));
	}
	return out;
}
