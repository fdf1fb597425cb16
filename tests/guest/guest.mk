# Placeholder: the test guest's build (tests/guest) defines GUEST_ELF and the guest target.
GUEST_ELF = build/guest/testguest.elf
guest:
