"""minerlens core: the pieces every minerlens service shares."""

__version__ = "0.1.0"
