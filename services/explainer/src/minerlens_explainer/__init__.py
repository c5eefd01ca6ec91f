"""minerlens explainer service."""
