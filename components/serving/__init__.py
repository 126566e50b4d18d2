"""Captioning with a trained model: loading it from any source, batch captioning over Ray Data, and
the model registry with its champion gate."""
