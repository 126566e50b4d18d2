"""Evaluation: the paper's metrics through pycocoevalcap's reference scorers, diversity, fitness,
pictures, batch prediction over Ray Data, and an evaluation in its own MLflow run."""
