"""An office employee's invitation: the workflow, its send and end activities, and the service
the web tier calls to accept or revoke one."""
