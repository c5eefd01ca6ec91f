"""minerlens siem service."""
