"""One package per long-running process: its vocabulary, workflow, activities and the service the
web tier calls. Cross-cutting plumbing (the outbox) lives beside them."""
