"""MLflow: runs, the Ray Train metrics callback, artifacts and plots."""
