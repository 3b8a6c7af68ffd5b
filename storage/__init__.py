"""All SQL of carewatch. Functions take a connection and never commit: the caller owns the transaction.

``migrate`` applies the versioned migrations and, when the TimescaleDB extension is available, turns
the time-series tables into hypertables with compression, retention and continuous aggregates.
"""

from storage.migrate import StorageMode, migrate

__all__ = ["StorageMode", "migrate"]
