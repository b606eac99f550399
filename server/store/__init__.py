"""Storage: one interface (base.Store) and its embedded SQLite implementation (sqlite.py)."""
