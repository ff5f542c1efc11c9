"""Recovery of a forgotten password or username: what the web tier calls to ask for one."""
