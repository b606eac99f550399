"""`python -m simhive.hardware.emulator run ...`: the same as the simhive-emulator command."""

from .cli import main

main()
