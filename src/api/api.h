/* api.h - ember's Firecracker-compatible REST API: routes, bodies, answers. */
#ifndef EMBER_API_API_H
#define EMBER_API_API_H

/*
 * Every path and method of firecracker-api.yaml is routed (docs/api.md lists
 * ember's status for each).  Requests arrive from api/http on the VMM
 * thread, one at a time; each is decoded (api/json), applied through the
 * controller (vmm/ctl) and answered as Firecracker does: 204 and no body for
 * an accepted PUT/PATCH, 200 and JSON for a GET, 400 and
 * {"fault_message": ...} for anything refused -- and the VM is left as it
 * was.  Features ember does not have (balloon, MMDS, snapshots, memory hot
 * plug, pmem, CPU configuration) answer 400 saying so.
 *
 * ember's additions: GET /pci (the PCI topology and every function's
 * configuration space), and the fields json.h lists.
 */

#include <stddef.h>

#include "api/http.h"
#include "util/err.h"
#include "vmm/ctl.h"

#define API_VERSION_STRING "1.17.0" /* the Firecracker API version ember implements */

struct api {
	struct ctl *ctl;
	struct http_server http;
	bool http_ready;
};

/* Bind the API socket (--api-sock) and serve on the controller's loop.  -errno with `e`. */
int api_init(struct api *a, struct ctl *c, const char *sock_path, size_t max_payload,
             struct err *e);
void api_destroy(struct api *a);

/*
 * Handle one request (the http_handler; also used by tests and the fuzz
 * target without a socket).
 */
void api_handle(void *opaque, const struct http_request *req, struct http_response *resp);

/*
 * Apply a Firecracker config file (--config-file): the same bodies as the
 * API under kebab-case keys, applied in Firecracker's order.  -errno with `e`
 * naming the key.  Does not start the VM.
 */
int api_apply_config_file(struct ctl *c, const char *path, struct err *e);
/*
 * Restore a microVM from a snapshot (--restore; PUT /snapshot/load without its other
 * fields): the state file, the memory file, and whether it runs at once or stays paused.
 * Before any other configuration.  -errno with `e`; nothing configured then.
 */
int api_restore(struct ctl *c, const char *snapshot_path, const char *mem_path, bool resume,
                struct err *e);
/* The same from a string (tests, fuzzing). */
int api_apply_config_text(struct ctl *c, const char *text, size_t len, struct err *e);

#endif
