/* config.c - the config file (--config-file): Firecracker's keys, applied as PUT bodies. */
#include "api/api_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/json.h"

/* ---- config file -------------------------------------------------------------------------- */

/* Firecracker's config file keys, in the order it applies them. */
static const char *const config_keys[] = {"logger",      "metrics",        "machine-config",
                                          "boot-source", "drives",         "network-interfaces",
                                          "vsock",       "entropy",        "serial",
                                          "balloon",     "mmds-config",    "cpu-config",
                                          "pmem",        "memory-hotplug", "vfio",
                                          NULL};

static int config_key(struct ctl *c, const char *key, json_t *v, struct err *e)
{
	size_t i;
	int r = 0;

	if (json_is_null(v))
		return 0;
	/* Firecracker's "cpu-config" is a custom template, or the path of a file holding one. */
	if (!strcmp(key, "cpu-config") && json_is_string(v)) {
		json_error_t je;
		json_t *t = json_load_file(json_string_value(v), JSON_REJECT_DUPLICATES, &je);

		if (!t)
			return err_set(e, EINVAL, "cannot read the CPU template %.200s: %s",
			               json_string_value(v), je.text);
		r = api_apply_put(c, key, t, NULL, e);
		json_decref(t);
		return r;
	}
	/* Keyed devices (drives, pmem, ...) and vfio are arrays of bodies; the rest one body each.
	 */
	if (!api_keyed_device(key) && strcmp(key, "vfio"))
		return api_apply_put(c, key, v, NULL, e);
	if (!json_is_array(v))
		return err_set(e, EINVAL, "\"%s\" must be an array", key);
	for (i = 0; r == 0 && i < json_array_size(v); i++)
		r = api_apply_put(c, key, json_array_get(v, i), NULL, e);
	return r;
}

int api_apply_config_text(struct ctl *c, const char *text, size_t len, struct err *e)
{
	json_t *j;
	int r;

	r = json_body(text, len, &j, e);
	if (r < 0) {
		json_error_t je;

		j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
		json_decref(j);
		err_clear(e);
		return err_set(e, EINVAL,
		               "the config file is not valid JSON: %s at line %d column %d",
		               je.text, je.line, je.column);
	}
	r = api_apply_config_json(c, j, e);
	json_decref(j);
	return r;
}

int api_apply_config_json(struct ctl *c, json_t *j, struct err *e)
{
	const char *key;
	unsigned int i;
	json_t *v;
	int r = 0;

	if (!json_is_object(j))
		return err_set(e, EINVAL, "the config file must hold a JSON object");
	json_object_foreach(j, key, v)
	{
		for (i = 0; config_keys[i] && strcmp(config_keys[i], key); i++)
			;
		if (!config_keys[i])
			return err_set(e, EINVAL, "unknown key \"%.64s\" in the config file", key);
	}
	for (i = 0; config_keys[i]; i++) {
		v = json_object_get(j, config_keys[i]);
		if (!v)
			continue;
		r = config_key(c, config_keys[i], v, e);
		if (r < 0) {
			err_prefix(e, "config file, \"%s\"", config_keys[i]);
			break;
		}
	}
	return r;
}

int api_apply_config_file(struct ctl *c, const char *path, struct err *e)
{
	struct stat st;
	char *text;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "cannot open the config file %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
		close(fd);
		return err_set(e, EINVAL,
		               "the config file %s is not a regular file of at most 1 MiB", path);
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return err_set(e, ENOMEM, "out of memory");
	}
	n = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(text);
		return err_sys(e, n < 0 ? errno : EIO, "cannot read the config file %s", path);
	}
	text[n] = '\0';
	r = api_apply_config_text(c, text, (size_t)n, e);
	free(text);
	return r;
}
