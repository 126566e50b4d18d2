"""MLflow as a thin adapter: runs, params, metrics, artifacts, the Ray Train callback, model sources.

It imports nothing of training, evaluation or serving.
"""
