"""Talking to OCI registries: image sources, the HTTP client, the push engine."""
