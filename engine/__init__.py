"""Headway's engine: log, processor, store, invoker, timers, ingress, admin and CLI."""
