"""Captioning with a trained model: the captioner, request encoding, and the MLflow pyfunc model."""
