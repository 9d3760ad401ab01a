"""Kafka: clusters, subscriptions (exactly-once ingestion) and the transactional outbox shipper."""
