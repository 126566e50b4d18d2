"""CapOnImage: captions written onto product images, one per text box.

The library behind the flows in ``flows/``. Subpackages that do not need Ray or MLflow
(``components.data`` pure functions, ``components.model``) import neither.
"""
