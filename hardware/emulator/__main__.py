"""`python -m simhive.hardware.emulator run ...`: the same as the simhive-emulator script."""

from .cli import main

main()
