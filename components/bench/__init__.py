"""What the benches share: the paper's ablation, the probes and the negative controls trained on one
device with the shared step runner, without Ray or MLflow (a GPU machine may have neither)."""
