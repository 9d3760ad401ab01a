"""Connectors between Headway and other systems (Kafka)."""
