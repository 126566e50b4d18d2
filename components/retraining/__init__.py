"""Scheduled retraining (``flows/retrain.py``): new crawl partitions in, a data gate, a candidate
trained from the champion, a paired comparison on the fixed test split, a gated promotion.

The pure parts (``gate``, ``comparison``, ``state``, ``replay``) need no Ray or MLflow; ``lock``
holds one retrain at a time on a shared disk or S3; ``driver`` runs the stages.
"""
