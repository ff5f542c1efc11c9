"""Telling the owner of an account, by e-mail, that something about its security changed."""
