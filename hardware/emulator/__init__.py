"""Virtual GSM modems on ptys, joined by a virtual network (an SMSC), for tests and demos.

Entry point: `simhive-emulator run` (see docs/emulator.md). The package is asyncio and standard
library apart from aiohttp (the control API) and click (the CLI); PDUs go through the agent's
codec in agent/modem/pdu.py, while python-gammu in the tests is the independent check on both.
"""
