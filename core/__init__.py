"""Kafka CDC Studio core: everything that works without Qt."""

__version__ = "0.1.0"
