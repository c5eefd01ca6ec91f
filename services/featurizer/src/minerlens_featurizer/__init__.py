"""minerlens featurizer service."""
