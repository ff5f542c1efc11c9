"""Changing an account's e-mail address: the new address confirms, the old one may undo."""
