"""Training: the curriculum, caption-matching negatives, schedules, and the shared training loop."""
