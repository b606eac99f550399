"""`python -m simhive.hardware.emulator run ...`: the simhive-emulator console script."""

from .cli import main

main()
