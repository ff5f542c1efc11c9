"""Registration: what the web tier calls to begin one and to redeem its e-mailed link."""
