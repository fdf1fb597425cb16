# guest.mk - build ember's freestanding test guest (tests/guest) into build/guest/testguest.elf.

GUEST_ELF    = build/guest/testguest.elf
GUEST_OUT    = build/guest
GUEST_CC    ?= gcc
GUEST_CFLAGS = -std=gnu11 $(WARN) -O2 -g -ffreestanding -fno-builtin -nostdlib -static \
	       -fno-pic -fno-pie -mcmodel=small -mno-red-zone -mno-sse -mno-mmx -mno-avx \
	       -mgeneral-regs-only -fno-stack-protector -fno-asynchronous-unwind-tables \
	       -fno-delete-null-pointer-checks -fno-tree-loop-distribute-patterns \
	       -fno-strict-aliasing -MMD -MP
GUEST_LDFLAGS = -nostdlib -static -no-pie -Wl,-T,tests/guest/guest.ld -Wl,--build-id=none \
		-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--fatal-warnings

GUEST_SRCS := $(sort $(wildcard tests/guest/*.c) $(wildcard tests/guest/*.S))
GUEST_OBJS := $(patsubst tests/guest/%,$(GUEST_OUT)/%.o,$(GUEST_SRCS))

guest: $(GUEST_ELF)

$(GUEST_ELF): $(GUEST_OBJS) tests/guest/guest.ld
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS)

$(GUEST_OUT)/%.c.o: tests/guest/%.c tests/guest/guest.mk
	@mkdir -p $(dir $@)
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_OUT)/%.S.o: tests/guest/%.S tests/guest/guest.mk
	@mkdir -p $(dir $@)
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

-include $(GUEST_OBJS:.o=.d)
