/* api_internal.h - what the files of api/ share; nothing outside api/. */
#ifndef EMBER_API_API_INTERNAL_H
#define EMBER_API_API_INTERNAL_H

/*
 * api.c routes requests; config.c applies the config file through the same PUT handler;
 * pci_info.c answers GET /pci.
 */

#include <jansson.h>
#include <stdbool.h>

#include "api/api.h"

/*
 * Apply one resource body (before boot; after boot, devices are hot plugged): `what` is the
 * API path's first part, which is also the config file's key ("drives" and
 * "network-interfaces" take one element).  `path_id` is the id in the request's path (NULL
 * from the config file).  Nothing changes on error.
 */
int api_apply_put(struct ctl *c, const char *what, json_t *j, const char *path_id, struct err *e);

/* Whether `what` names a device kind configured by id (/drives/{id}): an array in the config
 * file. */
bool api_keyed_device(const char *what);

/* GET /pci's answer for the running VM (its PCI host, slots and MSI routes); NULL: no memory. */
json_t *api_pci_topology(struct ctl *c);

#endif
