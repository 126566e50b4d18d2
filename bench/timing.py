"""Timing shared by the benches: synchronised wall-clock medians and the matmul peak that MFU is
measured against (in the dtype training runs its matmuls in: bfloat16 on a GPU, float32 on a CPU)."""

from __future__ import annotations

import statistics
import time

import torch


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_dtype(device) -> torch.dtype:
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def matmul_peak(device, size: int, repeats: int) -> float:
    """FLOP/s of a square matmul in the training dtype on this device (the denominator of MFU)."""
    dtype = training_dtype(device)
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    seconds = timed(lambda: a @ b, device, repeats, warmup=2)
    return 2 * size**3 / seconds
