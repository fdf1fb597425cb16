# ember build.  See docs/build.md for why Make, and the targets below.
#
#   make            release build: build/release/ember, ember-jailer and ember-snap
#   make run        boot the demo guest (installs missing Debian packages first)
#   make test       every test tier on a sanitizer build (installs missing packages first)
#   make unit       unit tests only (ASan + UBSan; no /dev/kvm needed)
#   make kvm-vm-test  the KVM test VM runner's own tests (tests/runner)
#   make kvm-unit   unit tests that need a real VM (tests/kvm)
#   make vfio       VFIO on QEMU's emulated IOMMU and edu device (tests/vfio)
#   make integration  ember's test guest, the CLI, the API, hot plug (pytest)
#   make linux      the Linux tier: Debian's kernel on ember (tests/linux)
#   make guest      ember's test guest
#   make linux-guest  a Linux guest from Debian packages
#
# Every target that needs /dev/kvm runs it through scripts/kvm-vm: on this machine's /dev/kvm
# when it has one, otherwise inside the KVM test VM (QEMU TCG with emulated AMD SVM;
# docs/testing.md).  EMBER_KVM_VM=auto|always|never chooses.
#   make bench      benchmarks side by side with QEMU (bench-short: CI's quick form)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each (make test runs 10 s each)
#   make format     clang-format every C file in place

CC      ?= gcc
V       ?= 0
Q        = $(if $(filter 1,$(V)),,@)

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wno-missing-field-initializers -Wformat=2 -Wvla
BASE_CFLAGS = -std=gnu11 $(WARN) -D_GNU_SOURCE -Isrc -MMD -MP -pthread $(PKG_CFLAGS)
REL_CFLAGS  = $(BASE_CFLAGS) -O2 -g -fno-strict-aliasing
# The sanitizer build is the test build: EMBER_TEST_HOOKS compiles in the hooks tests use
# (EMBER_TEST_FORBIDDEN_SYSCALL, docs/security.md); the release build has none.
SAN_CFLAGS  = $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	      -fno-sanitize-recover=undefined -DEMBER_TEST_HOOKS
# Debian libraries (docs/build.md says why each): liburing for the block engine, http-parser
# and jansson for the API server.  libslirp (user-mode networking) is not linked: the slirp
# backend dlopen()s it when a VM asks for it, so glib and pcre2 cost nothing to the VMs that
# do not (only its header is used here; its .pc file would pull in glib's development package).
PKG_CFLAGS := $(shell pkg-config --cflags liburing 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs liburing 2>/dev/null) -lhttp_parser -ljansson
# libseccomp compiles the seccomp allowlists (src/vmm/seccomp_lists.c) to BPF at build time:
# a program linked with it writes <build>/gen/seccomp_bpf.h, which vmm/seccomp.c includes.
SECCOMP_CFLAGS := $(shell pkg-config --cflags libseccomp 2>/dev/null)
SECCOMP_LIBS   := $(shell pkg-config --libs libseccomp 2>/dev/null)
SECCOMP_LISTS   = src/vmm/seccomp_lists.c
LDLIBS      = $(PKG_LIBS) -pthread
# Debian's interpreter, where python3-pytest lives (a PATH python3 may be another).
PYTHON     ?= /usr/bin/python3

SRCS     := $(shell find src -name '*.c' -not -name main.c -not -name seccomp_lists.c | sort)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
KVM_UNIT_SRC := $(sort $(wildcard tests/kvm/test_*.c))

REL_DIR  = build/release
SAN_DIR  = build/asan

REL_OBJS = $(SRCS:%.c=$(REL_DIR)/%.o)
SAN_OBJS = $(SRCS:%.c=$(SAN_DIR)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(SAN_DIR)/unit/%)
KVM_UNIT_BIN = $(KVM_UNIT_SRC:tests/kvm/%.c=$(SAN_DIR)/kvm/%)
VFIO_TEST_BIN = $(SAN_DIR)/vfio/test_vfio

# The runner for everything that needs /dev/kvm.
KVM_VM   = scripts/kvm-vm
LINUX_DIR = build/linux
LINUX_GUEST = $(LINUX_DIR)/bzImage $(LINUX_DIR)/vmlinux $(LINUX_DIR)/initramfs.cpio.gz

.PHONY: all release asan unit kvm-unit guest test run deps format fuzz fuzz-build clean integration \
	bench bench-short linux-guest linux kvm-vm-test vfio

all: release
release: $(REL_DIR)/ember $(REL_DIR)/ember-jailer $(REL_DIR)/ember-snap
asan: $(SAN_DIR)/ember $(SAN_DIR)/ember-jailer $(SAN_DIR)/ember-snap

$(REL_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(REL_CFLAGS) -I$(REL_DIR)/gen -c $< -o $@

$(SAN_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_CFLAGS) -I$(SAN_DIR)/gen -c $< -o $@

# The seccomp filters as BPF arrays, per build flavour (the sanitizer builds allow their
# runtimes' calls too); docs/security.md.
define seccomp_gen
$(1)/gen/seccomp_bpf.h: $(SECCOMP_LISTS)
	@mkdir -p $$(dir $$@)
	$$(Q)$$(CC) -std=gnu11 $$(WARN) -D_GNU_SOURCE -O1 $$(SECCOMP_CFLAGS) $(2) \
		-o $(1)/gen/seccomp-lists $$< $$(SECCOMP_LIBS)
	$$(Q)$(1)/gen/seccomp-lists > $$@.tmp && mv $$@.tmp $$@
$(1)/src/vmm/seccomp.o: $(1)/gen/seccomp_bpf.h
endef
$(eval $(call seccomp_gen,$(REL_DIR),))
$(eval $(call seccomp_gen,$(SAN_DIR),-DSECCOMP_SANITIZER_LISTS))

$(REL_DIR)/libember.a: $(REL_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SAN_DIR)/libember.a: $(SAN_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(REL_DIR)/ember: $(REL_DIR)/src/main.o $(REL_DIR)/libember.a
	$(Q)$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

$(SAN_DIR)/ember: $(SAN_DIR)/src/main.o $(SAN_DIR)/libember.a
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ $^ $(LDLIBS)

# ember-jailer (src/jailer/, docs/security.md): its modules are in libember.a for the unit
# tests; it links none of ember's libraries.
$(REL_DIR)/ember-jailer: $(REL_DIR)/src/jailer/main.o $(REL_DIR)/libember.a
	$(Q)$(CC) $(REL_CFLAGS) -o $@ $^ -pthread

$(SAN_DIR)/ember-jailer: $(SAN_DIR)/src/jailer/main.o $(SAN_DIR)/libember.a
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ $^ -pthread

# ember-snap (src/snaptool/, docs/snapshot.md): merges a Diff snapshot onto its base.
$(REL_DIR)/ember-snap: $(REL_DIR)/src/snaptool/main.o $(REL_DIR)/libember.a
	$(Q)$(CC) $(REL_CFLAGS) -o $@ $^ -pthread

$(SAN_DIR)/ember-snap: $(SAN_DIR)/src/snaptool/main.o $(SAN_DIR)/libember.a
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ $^ -pthread

$(SAN_DIR)/unit/%: tests/unit/%.c $(SAN_DIR)/libember.a tests/unit/test.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_CFLAGS) -Itests/unit -o $@ $< $(SAN_DIR)/libember.a $(LDLIBS)

$(SAN_DIR)/kvm/%: tests/kvm/%.c $(SAN_DIR)/libember.a tests/unit/test.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_CFLAGS) -Itests/unit -o $@ $< $(SAN_DIR)/libember.a $(LDLIBS)

$(SAN_DIR)/vfio/%: tests/vfio/%.c $(SAN_DIR)/libember.a tests/unit/test.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_CFLAGS) -Itests/unit -o $@ $< $(SAN_DIR)/libember.a $(LDLIBS)

include tests/guest/guest.mk

# libFuzzer targets (tests/fuzz/fuzz_*.c): clang, the library built with fuzzer-no-link.
FUZZ_CC      = clang
FUZZ_DIR     = build/fuzz
FUZZ_SECONDS ?= 20
FUZZ_SECONDS_TEST ?= 10
FUZZ_CFLAGS  = $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	       -fno-sanitize-recover=undefined
FUZZ_OBJS    = $(SRCS:%.c=$(FUZZ_DIR)/%.o)
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/bin/%)

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(FUZZ_DIR)/gen -fsanitize=fuzzer-no-link -c $< -o $@

$(eval $(call seccomp_gen,$(FUZZ_DIR),-DSECCOMP_SANITIZER_LISTS))

$(FUZZ_DIR)/libember.a: $(FUZZ_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/bin/%: tests/fuzz/%.c $(FUZZ_DIR)/libember.a
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/unit -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libember.a $(LDLIBS)

deps:
	$(Q)scripts/deps.sh

unit: $(UNIT_BIN)
	$(Q)scripts/run-unit.sh $(UNIT_BIN)

# The KVM test VM runner's own tests (its failure modes), run on this machine.
kvm-vm-test:
	$(Q)$(PYTHON) -m pytest -q -p no:cacheprovider tests/runner

# Unit tests that open a real VM (the GSI router, hot plug on a real bus).
kvm-unit: $(KVM_UNIT_BIN)
	$(Q)$(KVM_VM) env UNIT_LABEL=kvm-unit scripts/run-unit.sh $(KVM_UNIT_BIN)

# VFIO on its test bed: QEMU's emulated IOMMU and edu device, in the KVM test VM even on a
# host with KVM (docs/vfio.md).
# QEMU's NVMe controller (MSI-X) is there too, backed by VFIO_NVME_IMG, which the Linux guest
# writes through it and the test checks afterwards; edu has an expansion ROM (VFIO_EDU_ROM),
# and pci-testdev gives an I/O BAR.
VFIO_NVME_IMG = build/vfio-nvme.img
VFIO_EDU_ROM = build/vfio-edu.rom
VFIO_VM_ARGS = EMBER_KVM_VM=always \
	EMBER_KVM_VM_QEMU_ARGS="-device intel-iommu,intremap=on,caching-mode=on -device edu,romfile=$(VFIO_EDU_ROM) \
	-drive file=$(VFIO_NVME_IMG),if=none,id=nv0,format=raw -device nvme,serial=embernv0,drive=nv0 -device pci-testdev \
	-device pci-bridge,id=vbr,chassis_nr=9 -device virtio-rng-pci,bus=vbr,addr=1 \
	-device virtio-rng-pci,bus=vbr,addr=2" \
	EMBER_KVM_VM_APPEND="intel_iommu=on"
$(VFIO_NVME_IMG):
	@mkdir -p $(dir $@)
	$(Q)truncate -s 64M $@

$(VFIO_EDU_ROM): tests/vfio/mkrom.py
	@mkdir -p $(dir $@)
	$(Q)$(PYTHON) tests/vfio/mkrom.py $@

vfio: $(VFIO_TEST_BIN) $(SAN_DIR)/ember guest $(LINUX_GUEST) $(VFIO_EDU_ROM)
	@mkdir -p $(dir $(VFIO_NVME_IMG)) && rm -f $(VFIO_NVME_IMG) && truncate -s 64M $(VFIO_NVME_IMG)
	$(Q)$(VFIO_VM_ARGS) $(KVM_VM) sh -c 'UNIT_LABEL=vfio scripts/run-unit.sh $(VFIO_TEST_BIN) && \
		EMBER=$(SAN_DIR)/ember EMBER_GUEST=$(GUEST_ELF) EMBER_LINUX_DIR=$(LINUX_DIR) \
		EMBER_VFIO_NVME_IMG=$(VFIO_NVME_IMG) $(PYTHON) -m pytest -q \
		-p no:cacheprovider tests/vfio'

# The jailer tests (test_jailer.py) jail the release ember: the sanitizers' runtime needs a
# /proc, which a jail has not (docs/security.md).
integration: $(SAN_DIR)/ember $(SAN_DIR)/ember-jailer $(SAN_DIR)/ember-snap $(REL_DIR)/ember guest $(SAN_DIR)/unit/test_acpi
	$(Q)$(KVM_VM) env EMBER=$(SAN_DIR)/ember EMBER_JAILER=$(SAN_DIR)/ember-jailer \
		EMBER_JAILED=$(REL_DIR)/ember EMBER_GUEST=$(GUEST_ELF) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The Linux tier: Debian's kernel (bzImage and ELF vmlinux) on the sanitizer build, every
# device kind, pciehp plug and unplug (docs/linux-guest.md); and on a jailed release ember.
linux: $(SAN_DIR)/ember $(SAN_DIR)/ember-jailer $(REL_DIR)/ember $(LINUX_GUEST)
	$(Q)$(KVM_VM) env EMBER=$(SAN_DIR)/ember EMBER_LINUX_DIR=$(LINUX_DIR) \
		EMBER_JAILER=$(SAN_DIR)/ember-jailer EMBER_JAILED=$(REL_DIR)/ember \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/linux

# Every tier, each one's time and result at the end (scripts/tiers.sh).
TIERS ?= unit fuzz kvm-vm-test kvm-unit vfio integration linux
test: deps
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS_TEST) scripts/tiers.sh $(TIERS)

DEMO_DISK = build/demo-disk.img

# A 16 MiB raw image whose first sector says hello (the demo guest prints it).
$(DEMO_DISK):
	@mkdir -p $(dir $@)
	$(Q)truncate -s 16M $@ && printf 'ember demo disk: hello from sector 0' | \
		dd of=$@ conv=notrunc status=none

run: deps
	$(Q)$(MAKE) --no-print-directory release guest $(DEMO_DISK)
	$(KVM_VM) $(REL_DIR)/ember --kernel $(GUEST_ELF) --mem 128 --vcpus 2 --root-ports 2 --pci-testdev \
		--pci-testdev-port 2 --disk $(DEMO_DISK) --disk $(DEMO_DISK),ro,transport=mmio \
		--rng --cmdline "console=ttyS0 demo"

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN) guest
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz.sh $(FUZZ_BIN)

# A Linux guest from Debian packages (docs/linux-guest.md): bzImage, vmlinux, initramfs.
linux-guest: $(LINUX_GUEST)

$(LINUX_GUEST) &: scripts/linux-guest.sh tests/linux/init tests/linux/mkinitramfs.py \
		tests/linux/extract-vmlinux.py
	$(Q)scripts/deps.sh linux
	$(Q)scripts/linux-guest.sh $(LINUX_DIR)

# Benchmarks side by side with QEMU (docs/performance.md); bench-short is CI's quick form.
bench: deps
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory release guest $(LINUX_GUEST) $(VFIO_EDU_ROM) $(VFIO_NVME_IMG)
	$(Q)$(KVM_VM) $(PYTHON) bench/run.py
	$(Q)$(VFIO_VM_ARGS) $(KVM_VM) $(PYTHON) bench/run.py --only vfio

bench-short: deps
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory release guest $(LINUX_GUEST)
	$(Q)$(MAKE) --no-print-directory $(VFIO_EDU_ROM) $(VFIO_NVME_IMG)
	$(Q)$(KVM_VM) $(PYTHON) bench/run.py --short
	$(Q)$(VFIO_VM_ARGS) $(KVM_VM) $(PYTHON) bench/run.py --only vfio --short

format:
	$(Q)clang-format -i $$(find src tests -name '*.[ch]')

clean:
	rm -rf build

-include $(REL_OBJS:.o=.d) $(SAN_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d) $(REL_DIR)/src/main.d $(SAN_DIR)/src/main.d \
	$(REL_DIR)/src/jailer/main.d $(SAN_DIR)/src/jailer/main.d \
	$(REL_DIR)/src/snaptool/main.d $(SAN_DIR)/src/snaptool/main.d \
	$(addsuffix .d,$(UNIT_BIN) $(KVM_UNIT_BIN) $(VFIO_TEST_BIN) $(FUZZ_BIN))
