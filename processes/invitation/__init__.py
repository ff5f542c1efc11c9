"""An office employee's invitation: what the web tier calls to accept or revoke one."""
