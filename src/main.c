/* main.c - ember's command line: parse options into a VM config, run the VM, report how it ended.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "api/api.h"
#include "util/log.h"
#include "vmm/ctl.h"
#include "vmm/vm.h"

/* Exit statuses (documented in --help and docs/usage.md). */
#define EXIT_GUEST_DONE 0 /* the guest reset or shut down, or SIGINT/SIGTERM stopped it */
#define EXIT_FAILURE_VM 1 /* the VM could not be built, or stopped on a fatal error */
#define EXIT_USAGE      2 /* bad command line */

static const char usage_text[] =
    "Usage: ember --kernel PATH [OPTIONS]            boot a kernel now\n"
    "       ember --firmware PATH [OPTIONS]          boot a BIOS image now\n"
    "       ember --api-sock PATH [OPTIONS]          wait for Firecracker API requests\n"
    "       ember --config-file FILE [--no-api] [OPTIONS]\n"
    "                                                boot from a Firecracker config file\n"
    "       ember --restore SNAPSHOT --mem-file MEM [--resume] [OPTIONS]\n"
    "                                                restore a microVM from a snapshot\n"
    "       ember --dump-pci [OPTIONS]\n"
    "\n"
    "A KVM microVM monitor driven by Firecracker's REST API (docs/api.md).\n"
    "\n"
    "Firecracker's options:\n"
    "      --api-sock PATH    serve the API on the Unix socket PATH (mode 0600; a stale\n"
    "                         socket file is replaced, a live server's is refused)\n"
    "      --config-file FILE configure the VM from Firecracker's JSON config file and\n"
    "                         start it at once; the API (if any) stays available\n"
    "      --no-api           no API socket (needs --config-file or --kernel/--firmware)\n"
    "      --id ID            the instance id in logs, metrics and GET / (default:\n"
    "                         anonymous-instance)\n"
    "      --log-path PATH    write the log to PATH (a file or a FIFO) in Firecracker's\n"
    "                         format\n"
    "      --level LEVEL      log level: Error, Warning, Info, Debug, Trace or Off\n"
    "      --show-level       put the level in each log line\n"
    "      --show-log-origin  put the source file and line in each log line\n"
    "      --metrics-path PATH\n"
    "                         write metrics to PATH (a file or a FIFO), one JSON object\n"
    "                         per flush (every 60 s and on FlushMetrics)\n"
    "      --http-api-max-payload-size BYTES\n"
    "                         largest request body the API accepts (default: 51200)\n"
    "      --boot-timer       log the time from InstanceStart to the guest's write of\n"
    "                         123 to the boot timer (docs/api.md)\n"
    "      --enable-pci       accepted for compatibility: ember always has PCI\n"
    "      --no-seccomp       install no seccomp filter (by default each thread kind --\n"
    "                         the VMM thread, each vCPU -- is confined to its own\n"
    "                         allowlist; a forbidden call kills ember with SIGSYS and\n"
    "                         the log names the thread and the call; docs/security.md)\n"
    "      --seccomp-filter FILE\n"
    "                         install FILE's filters instead of ember's: Firecracker's\n"
    "                         compiled filter (seccompiler-bin's output; threads vmm\n"
    "                         and vcpu) or a raw BPF program for every thread\n"
    "      --start-time-us US, --start-time-cpu-us US, --parent-cpu-time-us US\n"
    "                         the jailer's clock readings (CLOCK_MONOTONIC and process\n"
    "                         CPU time at its start, its own CPU time): the metrics'\n"
    "                         process_startup_time_us and _cpu_us count from them\n"
    "      --module NAME      log only lines from this module (as PUT /logger's module)\n"
    "      --mmds-size-limit BYTES\n"
    "                         the MMDS data store's size limit (default: the API's\n"
    "                         payload limit, 51200)\n"
    "      --metadata FILE    the MMDS data store's first contents: FILE's JSON\n"
    "\n"
    "ember's own options (the same configuration as the API's):\n"
    "  -k, --kernel PATH      kernel to boot: an ELF vmlinux (64-bit Linux boot protocol\n"
    "                         entry, or its Xen PVH entry with --pvh) or a bzImage\n"
    "      --firmware PATH    boot a BIOS image (64-256 KiB, e.g. SeaBIOS's bios.bin) from\n"
    "                         the reset vector instead of a kernel; its debug log\n"
    "                         (port 0x402) goes to standard output\n"
    "  -i, --initrd PATH      initial ramdisk\n"
    "  -c, --cmdline STRING   kernel command line (default: empty)\n"
    "  -m, --mem MIB          guest memory in MiB, 2 to 1048576 (default: 128)\n"
    "  -n, --vcpus N          number of vCPUs, 1 to 32 (default: 1)\n"
    "      --pvh              enter an ELF kernel through its Xen PVH note\n"
    "      --no-acpi          no ACPI tables, the MP table only (for guests that do not\n"
    "                         parse ACPI, such as OSv)\n"
    "      --disk PATH[,ro][,transport=pci|mmio][,engine=sync|uring]\n"
    "                         a virtio-blk disk backed by a raw image (repeatable, up to 8;\n"
    "                         API ids vda, vdb, ...)\n"
    "      --net tap=NAME|slirp[,mac=MAC][,transport=pci|mmio]\n"
    "                         a virtio-net NIC on a tap device, or on user-mode\n"
    "                         networking (slirp: 10.0.2.0/24, DHCP) (repeatable, up to 4;\n"
    "                         API ids net0, net1, ...)\n"
    "      --vsock cid=N,uds=PATH[,transport=pci|mmio]\n"
    "                         a virtio-vsock device; the host side is the Unix socket PATH\n"
    "      --rng[=transport=pci|mmio]\n"
    "                         a virtio-rng entropy device\n"
    "      --pmem PATH[,ro][,root][,transport=pci|mmio]\n"
    "                         a virtio-pmem device mapping the file PATH into guest memory\n"
    "                         (repeatable, up to 4; API ids pmem0, pmem1, ...; root: the\n"
    "                         root device, root=/dev/pmemN on the kernel command line)\n"
    "                         (virtio transport: PCI by default; MMIO devices are announced\n"
    "                         with virtio_mmio.device= on the kernel command line)\n"
    "      --root-ports N     PCIe root ports (hot-plug slots) on bus 0, 0 to 14\n"
    "                         (default: 0; the API's machine-config pcie_root_ports)\n"
    "      --pci-testdev      add ember's PCI test device (docs/pci-testdev.md)\n"
    "      --pci-testdev-port K\n"
    "                         put the test device behind root port K (1-based)\n"
    "                         instead of on bus 0\n"
    "      --vfio PATH        pass the host PCI device PATH (its sysfs folder or\n"
    "                         DDDD:BB:DD.F, bound to vfio-pci) through to the guest,\n"
    "                         behind a root port of its own; up to 4 (docs/vfio.md)\n"
    "      --restore SNAPSHOT restore the microVM saved in SNAPSHOT (PUT /snapshot/create)\n"
    "                         instead of booting one, as PUT /snapshot/load does; the\n"
    "                         VM's configuration comes from the snapshot (docs/snapshot.md)\n"
    "      --mem-file MEM     the snapshot's memory file (needed with --restore)\n"
    "      --resume           run the restored VM at once (without it, it stays paused\n"
    "                         until PATCH /vm resumes it: needs --api-sock)\n"
    "      --dump-pci         build the VM's devices, print every PCI function's\n"
    "                         configuration space in 'lspci -xxxx' format and exit\n"
    "                         without running (no --kernel needed)\n"
    "                         (decode it with: lspci -F FILE -vvv)\n"
    "      --log-level LEVEL  error, warning, info or debug (default: warning), in ember's\n"
    "                         own one-line format on standard error\n"
    "  -h, --help             show this help and exit\n"
    "  -V, --version          show the version and exit\n"
    "\n"
    "The guest's serial console (COM1) is ember's standard input and output.\n"
    "Ctrl-C or SIGTERM stops the VM; SIGUSR2 presses its ACPI power button.\n"
    "\n"
    "Exit status: 0 when the guest resets or shuts down, or a signal stops it;\n"
    "1 when the VM cannot be built or stops on a fatal error; 2 for a bad command line.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ember: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'ember --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

/* Parse a decimal number in [min, max]; no sign, no suffix, no trailing junk. */
static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end || *out < min || *out > max)
		return -ERANGE;
	return 0;
}

enum {
	OPT_PVH = 256,
	OPT_NO_ACPI,
	OPT_FIRMWARE,
	OPT_DISK,
	OPT_NET,
	OPT_VSOCK,
	OPT_RNG,
	OPT_PMEM,
	OPT_ROOT_PORTS,
	OPT_PCI_TESTDEV,
	OPT_PCI_TESTDEV_PORT,
	OPT_DUMP_PCI,
	OPT_LOG_LEVEL,
	OPT_API_SOCK,
	OPT_CONFIG_FILE,
	OPT_NO_API,
	OPT_ID,
	OPT_LOG_PATH,
	OPT_LEVEL,
	OPT_SHOW_LEVEL,
	OPT_SHOW_LOG_ORIGIN,
	OPT_METRICS_PATH,
	OPT_MAX_PAYLOAD,
	OPT_BOOT_TIMER,
	OPT_ENABLE_PCI,
	OPT_NO_SECCOMP,
	OPT_SECCOMP_FILTER,
	OPT_START_TIME_US,
	OPT_START_TIME_CPU_US,
	OPT_PARENT_CPU_TIME_US,
	OPT_MODULE,
	OPT_MMDS_SIZE_LIMIT,
	OPT_METADATA,
	OPT_VFIO,
	OPT_RESTORE,
	OPT_MEM_FILE,
	OPT_RESUME,
	OPT_LAST
};

static const struct option long_opts[] = {
    {"kernel", required_argument, NULL, 'k'},
    {"initrd", required_argument, NULL, 'i'},
    {"cmdline", required_argument, NULL, 'c'},
    {"mem", required_argument, NULL, 'm'},
    {"vcpus", required_argument, NULL, 'n'},
    {"pvh", no_argument, NULL, OPT_PVH},
    {"no-acpi", no_argument, NULL, OPT_NO_ACPI},
    {"firmware", required_argument, NULL, OPT_FIRMWARE},
    {"disk", required_argument, NULL, OPT_DISK},
    {"net", required_argument, NULL, OPT_NET},
    {"vsock", required_argument, NULL, OPT_VSOCK},
    {"rng", optional_argument, NULL, OPT_RNG},
    {"pmem", required_argument, NULL, OPT_PMEM},
    {"root-ports", required_argument, NULL, OPT_ROOT_PORTS},
    {"pci-testdev", no_argument, NULL, OPT_PCI_TESTDEV},
    {"pci-testdev-port", required_argument, NULL, OPT_PCI_TESTDEV_PORT},
    {"dump-pci", no_argument, NULL, OPT_DUMP_PCI},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"api-sock", required_argument, NULL, OPT_API_SOCK},
    {"config-file", required_argument, NULL, OPT_CONFIG_FILE},
    {"no-api", no_argument, NULL, OPT_NO_API},
    {"id", required_argument, NULL, OPT_ID},
    {"log-path", required_argument, NULL, OPT_LOG_PATH},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"show-level", no_argument, NULL, OPT_SHOW_LEVEL},
    {"show-log-origin", no_argument, NULL, OPT_SHOW_LOG_ORIGIN},
    {"metrics-path", required_argument, NULL, OPT_METRICS_PATH},
    {"http-api-max-payload-size", required_argument, NULL, OPT_MAX_PAYLOAD},
    {"boot-timer", no_argument, NULL, OPT_BOOT_TIMER},
    {"enable-pci", no_argument, NULL, OPT_ENABLE_PCI},
    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
    {"seccomp-filter", required_argument, NULL, OPT_SECCOMP_FILTER},
    {"start-time-us", required_argument, NULL, OPT_START_TIME_US},
    {"start-time-cpu-us", required_argument, NULL, OPT_START_TIME_CPU_US},
    {"parent-cpu-time-us", required_argument, NULL, OPT_PARENT_CPU_TIME_US},
    {"module", required_argument, NULL, OPT_MODULE},
    {"mmds-size-limit", required_argument, NULL, OPT_MMDS_SIZE_LIMIT},
    {"metadata", required_argument, NULL, OPT_METADATA},
    {"vfio", required_argument, NULL, OPT_VFIO},
    {"restore", required_argument, NULL, OPT_RESTORE},
    {"mem-file", required_argument, NULL, OPT_MEM_FILE},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The command line, before it becomes resources. */
struct cli {
	const char *kernel, *firmware, *initrd, *cmdline;
	unsigned long long mem_mib;
	unsigned int vcpus, root_ports, testdev_port;
	bool mem_set, vcpus_set, pvh, no_acpi, testdev, dump_pci;
	struct vm_devices_cfg dev;
	const char *api_sock, *config_file, *id, *log_path, *level, *metrics_path, *module;
	const char *seccomp_filter;
	bool no_seccomp;
	const char *vfio[VM_MAX_VFIO];
	unsigned int nvfio;
	/* Firecracker's jailer's clock readings (--start-time-us, ...); 0 when not given. */
	unsigned long long start_time_us, start_time_cpu_us, parent_cpu_time_us;
	bool start_time_set, start_time_cpu_set;
	bool no_api, show_level, show_origin, boot_timer;
	unsigned long long max_payload;
	unsigned long long mmds_size_limit; /* --mmds-size-limit */
	bool mmds_size_set;
	const char *metadata;           /* --metadata FILE */
	const char *restore, *mem_file; /* --restore, --mem-file */
	bool resume;
	bool vm_flags; /* a flag that configures the VM (--mem, --disk, ...): not with --restore */
};

static int parse_args(int argc, char **argv, struct cli *o, int *exit_now)
{
	unsigned int seen[OPT_LAST] = {0};
	unsigned long long v;
	int opt, optidx = 0;

	*exit_now = -1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":k:i:c:m:n:hV", long_opts, &optidx)) != -1) {
		if (opt > 0 && opt < OPT_LAST && opt != OPT_DISK && opt != OPT_NET &&
		    opt != OPT_VFIO && opt != OPT_PMEM && seen[opt]++)
			return usage_error("option '%s' given more than once", argv[optind - 1]);
		if (opt == 'm' || opt == 'n' || opt == OPT_DISK || opt == OPT_NET ||
		    opt == OPT_VSOCK || opt == OPT_RNG || opt == OPT_PMEM ||
		    opt == OPT_ROOT_PORTS || opt == OPT_PCI_TESTDEV ||
		    opt == OPT_PCI_TESTDEV_PORT || opt == OPT_VFIO || opt == OPT_NO_ACPI)
			o->vm_flags = true;
		switch (opt) {
		case 'k':
			o->kernel = optarg;
			break;
		case 'i':
			o->initrd = optarg;
			break;
		case 'c':
			o->cmdline = optarg;
			break;
		case 'm':
			if (parse_uint(optarg, VM_MIN_MEM_MIB, VM_MAX_MEM_MIB, &v) < 0)
				return usage_error("--mem '%s': expected MiB from 2 to 1048576",
				                   optarg);
			o->mem_mib = v;
			o->mem_set = true;
			break;
		case 'n':
			if (parse_uint(optarg, 1, VM_MAX_VCPUS, &v) < 0)
				return usage_error("--vcpus '%s': expected a number from 1 to 32",
				                   optarg);
			o->vcpus = (unsigned int)v;
			o->vcpus_set = true;
			break;
		case OPT_PVH:
			o->pvh = true;
			break;
		case OPT_NO_ACPI:
			o->no_acpi = true;
			break;
		case OPT_FIRMWARE:
			o->firmware = optarg;
			break;
		case OPT_DISK:
		case OPT_NET:
		case OPT_VSOCK:
		case OPT_RNG:
		case OPT_PMEM: {
			struct err e = {0};
			int r = opt == OPT_DISK    ? devopts_disk(&o->dev, optarg, &e)
			        : opt == OPT_NET   ? devopts_net(&o->dev, optarg, &e)
			        : opt == OPT_VSOCK ? devopts_vsock(&o->dev, optarg, &e)
			        : opt == OPT_PMEM  ? devopts_pmem(&o->dev, optarg, &e)
			                           : devopts_rng(&o->dev, optarg, &e);

			if (r < 0)
				return usage_error("%s", e.msg);
			break;
		}
		case OPT_ROOT_PORTS:
			if (parse_uint(optarg, 0, VM_MAX_ROOT_PORTS, &v) < 0)
				return usage_error(
				    "--root-ports '%s': expected a number from 0 to %u", optarg,
				    VM_MAX_ROOT_PORTS);
			o->root_ports = (unsigned int)v;
			break;
		case OPT_PCI_TESTDEV:
			o->testdev = true;
			break;
		case OPT_PCI_TESTDEV_PORT:
			if (parse_uint(optarg, 1, VM_MAX_ROOT_PORTS, &v) < 0)
				return usage_error("--pci-testdev-port '%s': expected a root port "
				                   "number from 1 to %u",
				                   optarg, VM_MAX_ROOT_PORTS);
			o->testdev_port = (unsigned int)v;
			break;
		case OPT_DUMP_PCI:
			o->dump_pci = true;
			break;
		case OPT_LOG_LEVEL:
			if (!strcmp(optarg, "error"))
				log_set_level(LOG_ERROR);
			else if (!strcmp(optarg, "warning") || !strcmp(optarg, "warn"))
				log_set_level(LOG_WARN);
			else if (!strcmp(optarg, "info"))
				log_set_level(LOG_INFO);
			else if (!strcmp(optarg, "debug"))
				log_set_level(LOG_DEBUG);
			else
				return usage_error("--log-level '%s': expected error, warning, "
				                   "info or debug",
				                   optarg);
			break;
		case OPT_API_SOCK:
			if (!*optarg)
				return usage_error("%s", "--api-sock needs a path");
			o->api_sock = optarg;
			break;
		case OPT_CONFIG_FILE:
			o->config_file = optarg;
			break;
		case OPT_NO_API:
			o->no_api = true;
			break;
		case OPT_ID: {
			struct err e = {0};

			if (res_check_instance_id(optarg, &e) < 0)
				return usage_error("--id '%s': %s", optarg, e.msg);
			o->id = optarg;
			break;
		}
		case OPT_LOG_PATH:
			o->log_path = optarg;
			break;
		case OPT_LEVEL: {
			enum log_level l;

			if (log_level_parse(optarg, &l) < 0)
				return usage_error(
				    "--level '%s': expected Error, Warning, Info, Debug, "
				    "Trace or Off",
				    optarg);
			o->level = optarg;
			break;
		}
		case OPT_SHOW_LEVEL:
			o->show_level = true;
			break;
		case OPT_SHOW_LOG_ORIGIN:
			o->show_origin = true;
			break;
		case OPT_METRICS_PATH:
			o->metrics_path = optarg;
			break;
		case OPT_MAX_PAYLOAD:
			if (parse_uint(optarg, 1, 1u << 30, &v) < 0)
				return usage_error(
				    "--http-api-max-payload-size '%s': expected bytes "
				    "from 1 to 1073741824",
				    optarg);
			o->max_payload = v;
			break;
		case OPT_BOOT_TIMER:
			o->boot_timer = true;
			break;
		case OPT_ENABLE_PCI:
			break;
		case OPT_NO_SECCOMP:
			o->no_seccomp = true;
			break;
		case OPT_SECCOMP_FILTER:
			o->seccomp_filter = optarg;
			break;
		case OPT_START_TIME_US:
		case OPT_START_TIME_CPU_US:
		case OPT_PARENT_CPU_TIME_US:
		case OPT_MMDS_SIZE_LIMIT:
			if (parse_uint(optarg, 0, UINT64_MAX, &v) < 0)
				return usage_error("--%s '%s': expected an unsigned integer",
				                   long_opts[optidx].name, optarg);
			if (opt == OPT_START_TIME_US) {
				o->start_time_us = v;
				o->start_time_set = true;
			} else if (opt == OPT_START_TIME_CPU_US) {
				o->start_time_cpu_us = v;
				o->start_time_cpu_set = true;
			} else if (opt == OPT_PARENT_CPU_TIME_US) {
				o->parent_cpu_time_us = v;
			} else {
				o->mmds_size_limit = v;
				o->mmds_size_set = true;
			}
			break;
		case OPT_MODULE:
			o->module = optarg;
			break;
		case OPT_METADATA:
			o->metadata = optarg;
			break;
		case OPT_VFIO:
			if (o->nvfio >= VM_MAX_VFIO)
				return usage_error("--vfio: at most %d devices", VM_MAX_VFIO);
			o->vfio[o->nvfio++] = optarg;
			break;
		case OPT_RESTORE:
			o->restore = optarg;
			break;
		case OPT_MEM_FILE:
			o->mem_file = optarg;
			break;
		case OPT_RESUME:
			o->resume = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			*exit_now = 0;
			return 0;
		case 'V':
			printf("ember %s (Firecracker API %s)\n", EMBER_VERSION,
			       API_VERSION_STRING);
			*exit_now = 0;
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (o->testdev_port && !o->testdev)
		return usage_error("%s", "--pci-testdev-port needs --pci-testdev");
	if (o->testdev_port > o->root_ports)
		return usage_error(
		    "--pci-testdev-port %u: there are only %u root ports (--root-ports)",
		    o->testdev_port, o->root_ports);
	if (o->firmware && (o->kernel || o->initrd || o->cmdline || o->pvh))
		return usage_error("%s",
		                   "--firmware boots the firmware's own boot loader: it cannot "
		                   "be combined with --kernel, --initrd, --cmdline or --pvh");
	if ((o->initrd || o->cmdline || o->pvh) && !o->kernel)
		return usage_error("%s", "--initrd, --cmdline and --pvh need --kernel");
	if ((o->mem_file || o->resume) && !o->restore)
		return usage_error("%s", "--mem-file and --resume need --restore");
	if (o->restore && !o->mem_file)
		return usage_error("%s", "--restore needs --mem-file (the snapshot's memory file)");
	if (o->restore &&
	    (o->kernel || o->firmware || o->config_file || o->dump_pci || o->vm_flags || o->pvh))
		return usage_error("%s",
		                   "--restore takes the VM's configuration from the snapshot: "
		                   "it cannot be combined with --kernel, --firmware, "
		                   "--config-file, --dump-pci or the VM's flags (--mem, "
		                   "--disk, ...)");
	if (o->restore && !o->resume && !o->api_sock)
		return usage_error("%s", "--restore without --resume leaves the VM paused: it "
		                         "needs --api-sock to resume it (PATCH /vm)");
	if (o->no_seccomp && o->seccomp_filter)
		return usage_error("%s", "--no-seccomp and --seccomp-filter cannot be combined");
	if (o->no_api && o->api_sock)
		return usage_error("%s", "--no-api and --api-sock cannot be combined");
	if (o->no_api && !o->config_file && !o->kernel && !o->firmware && !o->restore)
		return usage_error("%s", "--no-api needs --config-file (or --kernel/--firmware)");
	if (!o->kernel && !o->firmware && !o->dump_pci && !o->api_sock && !o->config_file &&
	    !o->restore)
		return usage_error("%s", "no kernel given: use --kernel PATH (or --firmware PATH, "
		                         "--api-sock PATH or --config-file FILE)");
	if (o->dump_pci && (o->api_sock || o->config_file))
		return usage_error("%s", "--dump-pci cannot be combined with --api-sock or "
		                         "--config-file");
	return 0;
}

static char *dup_or_die(const char *s)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d) {
		fputs("ember: out of memory\n", stderr);
		exit(EXIT_FAILURE_VM);
	}
	return d;
}

/* The short flags, through the same setters as the API (vmm/resources.h). */
static int cli_to_resources(const struct cli *o, struct ctl *c, struct err *e)
{
	struct resources *r = &c->res;
	struct res_machine m = r->machine;
	unsigned int i;
	int ret = 0;

	r->firmware_path = dup_or_die(o->firmware);
	r->pvh = o->pvh;
	r->no_acpi = o->no_acpi;
	r->pci_testdev = o->testdev;
	r->pci_testdev_port = o->testdev_port;
	for (i = 0; ret == 0 && i < o->nvfio; i++) {
		struct res_vfio v = {.path = dup_or_die(o->vfio[i])};

		snprintf(v.id, sizeof(v.id), "vfio%u", i);
		ret = res_put_vfio(r, &v, e);
		res_vfio_clear(&v);
	}
	if (o->mem_set)
		m.mem_size_mib = o->mem_mib;
	if (o->vcpus_set)
		m.vcpu_count = o->vcpus;
	m.pcie_root_ports = o->root_ports;
	if (ret == 0)
		ret = res_set_machine(r, &m, e);
	if (ret == 0 && o->kernel) {
		struct res_boot b = {.kernel_image_path = dup_or_die(o->kernel),
		                     .initrd_path = dup_or_die(o->initrd),
		                     .boot_args = dup_or_die(o->cmdline ? o->cmdline : "")};

		ret = res_set_boot(r, &b, e);
		res_boot_clear(&b);
	}
	for (i = 0; ret == 0 && i < o->dev.ndisks; i++) {
		const struct vm_disk_cfg *dc = &o->dev.disks[i];
		struct res_drive d = {
		    .path_on_host = dup_or_die(dc->path),
		    .is_read_only = dc->read_only,
		    .cache_type = RES_CACHE_WRITEBACK,
		    .io_engine = dc->engine,
		    .transport = dc->transport,
		};

		snprintf(d.id, sizeof(d.id), "vd%c", 'a' + i);
		ret = res_put_drive(r, &d, e);
		res_drive_clear(&d);
	}
	for (i = 0; ret == 0 && i < o->dev.nnets; i++) {
		const struct vm_net_cfg *nc = &o->dev.nets[i];
		struct res_net n = {
		    .host_dev_name = dup_or_die(nc->tap),
		    .slirp = !nc->tap,
		    .has_mac = nc->has_mac,
		    .transport = nc->transport,
		};

		memcpy(n.mac, nc->mac, 6);
		snprintf(n.id, sizeof(n.id), "net%u", i);
		ret = res_put_net(r, &n, e);
		res_net_clear(&n);
	}
	if (ret == 0 && o->dev.vsock.present) {
		struct res_vsock vs = {.guest_cid = o->dev.vsock.cid,
		                       .uds_path = dup_or_die(o->dev.vsock.uds_path),
		                       .transport = o->dev.vsock.transport};

		ret = res_set_vsock(r, &vs, e);
		res_vsock_clear(&vs);
	}
	if (ret == 0 && o->dev.rng.present) {
		struct res_entropy en = {.transport = o->dev.rng.transport};

		ret = res_set_entropy(r, &en, e);
	}
	for (i = 0; ret == 0 && i < o->dev.npmems; i++) {
		const struct vm_pmem_cfg *pc = &o->dev.pmems[i];
		struct res_pmem p = {
		    .path_on_host = dup_or_die(pc->path),
		    .root_device = pc->root,
		    .read_only = pc->read_only,
		    .transport = pc->transport,
		};

		snprintf(p.id, sizeof(p.id), "pmem%u", i);
		ret = res_put_pmem(r, &p, e);
		res_pmem_clear(&p);
	}
	return ret;
}

/* --log-path/--level/--show-*: Firecracker's logger; --metrics-path: its metrics. */
static int cli_logger_metrics(const struct cli *o, struct ctl *c, struct err *e)
{
	int r = 0;

	if (o->log_path || o->level || o->show_level || o->show_origin || o->module) {
		struct res_logger l = {.log_path = dup_or_die(o->log_path),
		                       .show_level = o->show_level,
		                       .show_log_origin = o->show_origin,
		                       .module = dup_or_die(o->module)};

		if (o->level) {
			l.level_set = true;
			l.level_off = !strcasecmp(o->level, "off");
			log_level_parse(o->level, &l.level);
		}
		r = res_set_logger(&c->res, &l, e);
		res_logger_clear(&l);
		if (r == 0)
			r = ctl_apply_logger(c, e);
	}
	if (r == 0 && o->metrics_path) {
		struct res_metrics m = {.metrics_path = dup_or_die(o->metrics_path)};

		r = res_set_metrics(&c->res, &m, e);
		res_metrics_clear(&m);
		if (r == 0)
			r = ctl_apply_metrics(c, e);
	}
	return r;
}

/* --metadata FILE: Firecracker's MMDS contents at start (before the config file, as there). */
static int cli_metadata(const char *path, struct ctl *c, struct err *e)
{
	struct mmds *m = res_mmds_store(&c->res);
	json_error_t je;
	json_t *j;
	int r;

	if (!m)
		return err_set(e, ENOMEM, "out of memory");
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return err_set(e, EINVAL, "--metadata %.200s: %s at line %d column %d", path,
		               je.text, je.line, je.column);
	r = mmds_put(m, j, e);
	json_decref(j);
	if (r < 0)
		err_prefix(e, "--metadata %.200s", path);
	return r;
}

/* The seccomp filters: ember's own, FILE's (--seccomp-filter), or none (--no-seccomp). */
static int cli_seccomp(const struct cli *o, struct ctl *c, struct err *e)
{
	if (o->no_seccomp) {
		log_info("seccomp: --no-seccomp: no thread is confined");
		return 0;
	}
	if (o->seccomp_filter)
		return seccomp_filters_load(&c->seccomp, o->seccomp_filter, e);
	return seccomp_filters_default(&c->seccomp, e);
}

int main(int argc, char **argv)
{
	struct cli o = {0};
	struct ctl c;
	struct api api = {0};
	struct err e = {0};
	sigset_t set;
	int exit_now, r, status;

	r = parse_args(argc, argv, &o, &exit_now);
	if (r)
		return r;
	if (exit_now >= 0)
		return exit_now;

	/* From here on SIGINT/SIGTERM/SIGUSR2 are read by the VMM thread through a signalfd. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	r = ctl_init(&c, &e);
	if (r < 0) {
		fprintf(stderr, "ember: %s\n", e.msg[0] ? e.msg : strerror(-r));
		return EXIT_FAILURE_VM;
	}
	if (o.id)
		c.instance_id = o.id;
	ctl_set_start_times(&c, o.start_time_set ? &o.start_time_us : NULL,
	                    o.start_time_cpu_set ? &o.start_time_cpu_us : NULL,
	                    o.parent_cpu_time_us);
	/* Firecracker's default for the MMDS data store: the API's payload limit. */
	if (o.mmds_size_set || o.max_payload)
		c.res.mmds.size_limit = o.mmds_size_set ? o.mmds_size_limit : o.max_payload;
	c.build_only = o.dump_pci;
	c.boot_timer = o.boot_timer;
	r = cli_logger_metrics(&o, &c, &e);
	if (r == 0)
		r = cli_seccomp(&o, &c, &e);
	if (r == 0)
		r = cli_to_resources(&o, &c, &e);
	if (r == 0 && o.metadata)
		r = cli_metadata(o.metadata, &c, &e);
	if (r == 0 && o.config_file)
		r = api_apply_config_file(&c, o.config_file, &e);
	if (r == 0 && o.api_sock)
		r = api_init(&api, &c, o.api_sock, o.max_payload, &e);
	/* Confined before the API reads a request and before any VM is built. */
	if (r == 0)
		r = seccomp_install(&c.seccomp, SECCOMP_THREAD_VMM, "vmm", &e);
	if (r == 0 && (o.kernel || o.firmware || o.config_file || o.dump_pci))
		r = ctl_start(&c, &e);
	if (r == 0 && o.restore)
		r = api_restore(&c, o.restore, o.mem_file, o.resume, &e);
	if (r < 0) {
		api_destroy(&api);
		ctl_destroy(&c);
		fprintf(stderr, "ember: %s\n", e.msg[0] ? e.msg : strerror(-r));
		return EXIT_FAILURE_VM;
	}
	if (o.dump_pci) {
		vm_dump_pci(c.vm, stdout);
		ctl_destroy(&c);
		return fflush(stdout) == 0 ? EXIT_GUEST_DONE : EXIT_FAILURE_VM;
	}
	status = ctl_run(&c);
	api_destroy(&api);
	ctl_destroy(&c);
	fflush(stdout);
	fprintf(stderr, "ember: %s\n", c.exit.message[0] ? c.exit.message : "stopped");
	return status ? EXIT_FAILURE_VM : EXIT_GUEST_DONE;
}
