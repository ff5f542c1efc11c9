"""E-mail for every process: the mailer and its templates (text + HTML, in the recipient's
language), the send-once path with its one "mint a link and send it once" helper (`once.py`),
and the e-mail activities several processes call (`activities.py`). Nothing here reads `web/`."""
