"""Captions you can publish: checks a caption must pass before it goes onto a product image."""
