/* main.c - ember's command line: parse options into a VM config, run the VM, report how it ended.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/vm.h"

#define EMBER_VERSION "0.1.0"

/* Exit statuses (documented in --help and docs/usage.md). */
#define EXIT_GUEST_DONE 0 /* the guest reset or shut down, or SIGINT/SIGTERM stopped it */
#define EXIT_FAILURE_VM 1 /* the VM could not be built, or stopped on a fatal error */
#define EXIT_USAGE      2 /* bad command line */

static const char usage_text[] =
    "Usage: ember --kernel PATH [OPTIONS]\n"
    "       ember --firmware PATH [OPTIONS]\n"
    "       ember --dump-pci [OPTIONS]\n"
    "\n"
    "Boot a KVM microVM from a kernel image: an ELF vmlinux (64-bit Linux boot\n"
    "protocol entry, or its Xen PVH entry with --pvh) or a bzImage.\n"
    "\n"
    "Options:\n"
    "  -k, --kernel PATH      kernel to boot (required unless --firmware)\n"
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
    "                         a virtio-blk disk backed by a raw image (repeatable, up to 8)\n"
    "      --net tap=NAME|slirp[,mac=MAC][,transport=pci|mmio]\n"
    "                         a virtio-net NIC on a tap device, or on user-mode\n"
    "                         networking (slirp: 10.0.2.0/24, DHCP) (repeatable, up to 4)\n"
    "      --vsock cid=N,uds=PATH[,transport=pci|mmio]\n"
    "                         a virtio-vsock device; the host side is the Unix socket PATH\n"
    "      --rng[=transport=pci|mmio]\n"
    "                         a virtio-rng entropy device\n"
    "                         (virtio transport: PCI by default; MMIO devices are announced\n"
    "                         with virtio_mmio.device= on the kernel command line)\n"
    "      --root-ports N     PCIe root ports (hot-plug slots) on bus 0, 0 to 14\n"
    "                         (default: 0)\n"
    "      --pci-testdev      add ember's PCI test device (docs/pci-testdev.md)\n"
    "      --pci-testdev-port K\n"
    "                         put the test device behind root port K (1-based)\n"
    "                         instead of on bus 0\n"
    "      --dump-pci         build the VM's devices, print every PCI function's\n"
    "                         configuration space in 'lspci -xxxx' format and exit\n"
    "                         without running (no --kernel needed)\n"
    "                         (decode it with: lspci -F FILE -vvv)\n"
    "      --log-level LEVEL  error, warning, info or debug (default: warning)\n"
    "  -h, --help             show this help and exit\n"
    "  -V, --version          show the version and exit\n"
    "\n"
    "The guest's serial console (COM1) is ember's standard input and output.\n"
    "Ctrl-C or SIGTERM stops the VM.\n"
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
	OPT_ROOT_PORTS,
	OPT_PCI_TESTDEV,
	OPT_PCI_TESTDEV_PORT,
	OPT_DUMP_PCI,
	OPT_LOG_LEVEL
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
    {"root-ports", required_argument, NULL, OPT_ROOT_PORTS},
    {"pci-testdev", no_argument, NULL, OPT_PCI_TESTDEV},
    {"pci-testdev-port", required_argument, NULL, OPT_PCI_TESTDEV_PORT},
    {"dump-pci", no_argument, NULL, OPT_DUMP_PCI},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, struct vm_config *cfg, bool *dump_pci, int *exit_now)
{
	unsigned int seen[OPT_LOG_LEVEL + 1] = {0};
	unsigned long long v;
	int opt;

	*exit_now = -1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":k:i:c:m:n:hV", long_opts, NULL)) != -1) {
		if (opt > 0 && opt <= OPT_LOG_LEVEL && opt != OPT_DISK && opt != OPT_NET &&
		    seen[opt]++)
			return usage_error("option '%s' given more than once", argv[optind - 1]);
		switch (opt) {
		case 'k':
			cfg->kernel_path = optarg;
			break;
		case 'i':
			cfg->initrd_path = optarg;
			break;
		case 'c':
			cfg->cmdline = optarg;
			break;
		case 'm':
			if (parse_uint(optarg, VM_MIN_MEM_MIB, VM_MAX_MEM_MIB, &v) < 0)
				return usage_error("--mem '%s': expected MiB from 2 to 1048576",
				                   optarg);
			cfg->mem_mib = v;
			break;
		case 'n':
			if (parse_uint(optarg, 1, VM_MAX_VCPUS, &v) < 0)
				return usage_error("--vcpus '%s': expected a number from 1 to 32",
				                   optarg);
			cfg->vcpus = (unsigned int)v;
			break;
		case OPT_PVH:
			cfg->pvh = true;
			break;
		case OPT_NO_ACPI:
			cfg->no_acpi = true;
			break;
		case OPT_FIRMWARE:
			cfg->firmware_path = optarg;
			break;
		case OPT_DISK:
		case OPT_NET:
		case OPT_VSOCK:
		case OPT_RNG: {
			struct err e = {0};
			int r = opt == OPT_DISK    ? devopts_disk(&cfg->dev, optarg, &e)
			        : opt == OPT_NET   ? devopts_net(&cfg->dev, optarg, &e)
			        : opt == OPT_VSOCK ? devopts_vsock(&cfg->dev, optarg, &e)
			                           : devopts_rng(&cfg->dev, optarg, &e);

			if (r < 0)
				return usage_error("%s", e.msg);
			break;
		}
		case OPT_ROOT_PORTS:
			if (parse_uint(optarg, 0, VM_MAX_ROOT_PORTS, &v) < 0)
				return usage_error(
				    "--root-ports '%s': expected a number from 0 to %u", optarg,
				    VM_MAX_ROOT_PORTS);
			cfg->root_ports = (unsigned int)v;
			break;
		case OPT_PCI_TESTDEV:
			cfg->pci_testdev = true;
			break;
		case OPT_PCI_TESTDEV_PORT:
			if (parse_uint(optarg, 1, VM_MAX_ROOT_PORTS, &v) < 0)
				return usage_error("--pci-testdev-port '%s': expected a root port "
				                   "number from 1 to %u",
				                   optarg, VM_MAX_ROOT_PORTS);
			cfg->pci_testdev_port = (unsigned int)v;
			break;
		case OPT_DUMP_PCI:
			*dump_pci = true;
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
		case 'h':
			fputs(usage_text, stdout);
			*exit_now = 0;
			return 0;
		case 'V':
			printf("ember %s\n", EMBER_VERSION);
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
	if (cfg->pci_testdev_port && !cfg->pci_testdev)
		return usage_error("%s", "--pci-testdev-port needs --pci-testdev");
	if (cfg->pci_testdev_port > cfg->root_ports)
		return usage_error(
		    "--pci-testdev-port %u: there are only %u root ports (--root-ports)",
		    cfg->pci_testdev_port, cfg->root_ports);
	if (cfg->firmware_path &&
	    (cfg->kernel_path || cfg->initrd_path || cfg->cmdline || cfg->pvh))
		return usage_error("%s",
		                   "--firmware boots the firmware's own boot loader: it cannot "
		                   "be combined with --kernel, --initrd, --cmdline or --pvh");
	if (!cfg->kernel_path && !cfg->firmware_path && !*dump_pci)
		return usage_error("%s", "no kernel given: use --kernel PATH (or --firmware PATH)");
	cfg->build_only = *dump_pci;
	return 0;
}

int main(int argc, char **argv)
{
	struct vm_config cfg = {
	    .mem_mib = 128,
	    .vcpus = 1,
	    .console_in_fd = STDIN_FILENO,
	    .console_out_fd = STDOUT_FILENO,
	};
	struct vm_exit_info info = {0};
	struct err e = {0};
	struct vm *vm;
	sigset_t set;
	bool dump_pci = false;
	int exit_now, r;

	r = parse_args(argc, argv, &cfg, &dump_pci, &exit_now);
	if (r)
		return r;
	if (exit_now >= 0)
		return exit_now;

	/* From here on SIGINT/SIGTERM are read by the VMM thread through a signalfd. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	r = vm_create(&vm, &cfg, &e);
	if (r < 0) {
		fprintf(stderr, "ember: %s\n", e.msg[0] ? e.msg : strerror(-r));
		return EXIT_FAILURE_VM;
	}
	if (dump_pci) {
		vm_dump_pci(vm, stdout);
		vm_destroy(vm);
		return fflush(stdout) == 0 ? EXIT_GUEST_DONE : EXIT_FAILURE_VM;
	}
	r = vm_run(vm, &info);
	vm_destroy(vm);
	fflush(stdout);
	fprintf(stderr, "ember: %s\n", info.message[0] ? info.message : "stopped");
	if (r < 0 || info.reason == VM_STOP_FATAL)
		return EXIT_FAILURE_VM;
	return EXIT_GUEST_DONE;
}
