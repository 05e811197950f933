"""Kafka clients: the cluster inspector, connection profiles, follower reads."""
