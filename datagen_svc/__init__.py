"""The datagen service: synthetic instruction datasets from any OpenAI-compatible endpoint."""
