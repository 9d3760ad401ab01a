"""Deployments: HTTP endpoints serving services over the Restate service protocol."""
