"""Proxy access: one durable process per relationship between a person and someone acting for them."""
