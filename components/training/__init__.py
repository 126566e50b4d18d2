"""Training: the curriculum, caption-matching negatives, schedules, the step runner (plain PyTorch),
the Ray Train loop and driver, the one tracked fit, Ray Tune and the ablation runs."""
