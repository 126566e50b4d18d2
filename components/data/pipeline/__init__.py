"""Ray Data wiring: a split streamed to the trainers (``stream``) and a dataset checked in parallel
(``check``). Ray is imported inside the functions that run it."""
