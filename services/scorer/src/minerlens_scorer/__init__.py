"""minerlens scorer service."""
