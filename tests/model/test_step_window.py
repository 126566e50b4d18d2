from components.training.worker import LOG_LINE, StepWindow, log_line


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_window_rates_training_alone_and_the_eta_keeps_the_whole_pace():
    clock = Clock()
    window = StepWindow(clock)
    for _ in range(10):  # 10 steps of 20 boxes, 1 s each
        clock.now += 1.0
        window.add({"boxes": 20.0, "loss_generation": 2.0})
    first = window.summary(10, 30)
    assert first["boxes_per_s"] == 20.0 and first["seconds_per_step"] == 1.0 and first["eta_s"] == 20.0
    clock.now += 10.0  # a validation of 10 s, then the next window starts
    window.restart()
    for _ in range(10):
        clock.now += 1.0
        window.add({"boxes": 20.0, "loss_generation": 1.0})
    second = window.summary(20, 30)
    assert second["boxes_per_s"] == 20.0 and second["loss_generation"] == 1.0  # the validation is not training
    assert second["eta_s"] == 30.0 / 20 * 10  # 30 s for 20 steps so far, validation included: 15 s left


def test_the_log_line_names_a_few_figures_and_the_time_left():
    metrics = {"step": 90, "eta_s": 403.4, "train/loss_generation": 2.72, "train/lr": 4e-4, "val_subset/CIDEr": 94.66}
    line = log_line(90, 300, metrics)
    assert line == "step 90/300, 6 min 43 s left: train/loss_generation=2.72 val_subset/CIDEr=94.66"
    assert "val_subset/CIDEr" in LOG_LINE and "train/lr" not in LOG_LINE
