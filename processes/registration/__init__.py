"""Registration in every portal: the workflow (`workflows.py`), its member-record and help-desk
activities (`activities.py`), and the service the web tier calls to begin one and to redeem its
e-mailed link (`service.py`)."""
