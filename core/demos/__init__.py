"""Crash-and-recover demos: scenarios, worker processes, and the ledger."""
