"""Change capture to Kafka: change events, the outbox relay, the webhook receiver."""
