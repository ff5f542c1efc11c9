"""The fault suite takes minutes, so it runs on its own: `make test-faults` (and CI) sets
ACCESO_FAULTS=1; a plain `pytest` skips this folder."""

import os

collect_ignore_glob = [] if os.environ.get("ACCESO_FAULTS") else ["test_*.py"]
