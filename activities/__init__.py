"""Side effects several processes share that are neither mail nor plumbing: the audit line a
workflow writes (`audit.py`). A process's own activities live in its package."""
