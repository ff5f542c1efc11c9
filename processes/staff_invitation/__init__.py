"""A staff member added from the console: e-mail a link, wait for them to set a password and
enrol a second factor, or let the link lapse."""
