"""The physical world: the virtual modem emulator, udev rules, systemd units, Pi setup."""
