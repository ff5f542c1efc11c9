"""Every side effect of a workflow: database writes, e-mail, record look-ups, audit."""
