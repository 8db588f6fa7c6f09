"""Training loop, checkpoints, language models and generation."""
