"""simhive's version: the one place it is declared (pyproject.toml reads it from here).

A plain module, so that the agent can say its version in `hello` without importlib.metadata,
which pulls in email, zipfile, csv and more: about 4.5 MiB of memory in a long-running process.
"""

VERSION = "0.1.0"
