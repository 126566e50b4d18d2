"""Evaluation: the paper's metrics through pycocoevalcap's reference scorers."""
