"""One package per long-running process: its vocabulary, workflow, activities and the service the
web tier calls. Cross-cutting plumbing lives beside them: the outbox, and the search attributes
every workflow sets."""
