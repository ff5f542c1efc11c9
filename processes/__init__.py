"""One package per long-running process: its vocabulary, workflow, activities and the service the
web tier calls. The plumbing they share lives below them, in `temporal/` and `mail/`."""
