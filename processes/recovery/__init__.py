"""Recovery of a forgotten password or username: both workflows (`workflows.py`) and the service
the web tier calls to ask for one (`service.py`)."""
