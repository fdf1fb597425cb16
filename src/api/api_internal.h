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

/* The config file's object (api_apply_config_text without the parsing); the snapshot's
 * configuration goes through it too. */
int api_apply_config_json(struct ctl *c, json_t *j, struct err *e);

/* PUT /snapshot/create and /snapshot/load (snapshot.c): the body decoded, the answer set. */
struct json_snapshot_load;
void api_put_snapshot(struct ctl *c, bool create, json_t *j, struct http_response *resp);
int api_snapshot_load(struct ctl *c, const struct json_snapshot_load *p, struct err *e);

/* Whether `what` names a device kind configured by id (/drives/{id}): an array in the config
 * file. */
bool api_keyed_device(const char *what);

/*
 * MMDS (mmds.c): GET /mmds, PUT /mmds (patch false) or PATCH /mmds with the decoded body, the
 * answer set (204, 400, or 413 past the data store limit); PUT /mmds/config and the config
 * file's "mmds-config" (before boot; nothing changes on error).
 */
void api_mmds_get(struct ctl *c, struct http_response *resp);
void api_mmds_put(struct ctl *c, bool patch, json_t *j, struct http_response *resp);
int api_mmds_config(struct ctl *c, json_t *j, struct err *e);

/* GET /pci's answer for the running VM (its PCI host, slots and MSI routes); NULL: no memory. */
json_t *api_pci_topology(struct ctl *c);

#endif
