"""minerlens responder service."""
