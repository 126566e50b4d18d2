"""MLflow behind one adapter: runs, params, metrics, artifacts, the Ray Train callback, model sources,
and the pyfunc packaging of a checkpoint (``pyfunc``, with the code MLflow loads, ``model_code``).

It imports nothing of training, evaluation or serving.
"""
