"""Telling each client an account signed in to that its session ended: OIDC back-channel logout."""
