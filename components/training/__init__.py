"""Training: the curriculum, caption-matching negatives, schedules, the step runner (``steps``, plain
PyTorch), the Ray Train worker loop (``worker``) and driver (``driver``), the one tracked fit
(``tracked_fit``), Ray Tune and the ablation runs."""
