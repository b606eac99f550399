"""`python -m simhive.hardware.emulator run ...`, the same as the simhive-emulator console script."""

from .cli import main

main()
