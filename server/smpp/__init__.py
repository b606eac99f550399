"""The SMPP 3.4 door: a codec without I/O (pdu.py, text.py), the asyncio server (server.py,
session.py) and the durable receipt/MO outbox it drains (outbox.py). docs/smpp.md describes it."""
