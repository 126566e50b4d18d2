"""Captioning with a trained model: requests, the MLflow pyfunc model, batch captioning over Ray Data,
and the model registry with its champion gate."""
