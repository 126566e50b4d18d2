"""Model speed, side by side in one run.

    python bench/model_bench.py [--preset small] [--device cpu|cuda] [--images 8] [--boxes-per-image 5]

Prints decoding captions/s (cached vs uncached, greedy vs beam 3), training boxes/s (image-major vs
one image per box) and MFU: model FLOPs per second (counted by torch's FlopCounterMode over a
forward and backward) over a matmul peak measured in the same run on the same device, in the dtype
training runs in there: bfloat16 on a GPU (training steps under bfloat16 autocast, as the presets
train), float32 on a CPU. Inputs are
random tensors of the preset's shapes; an untrained model rarely emits <eos>, so every decode runs
the full 10 steps (the worst case).
"""

from __future__ import annotations

import argparse
import contextlib
import json

import torch
from timing import matmul_peak, timed, training_dtype  # bench/timing.py, beside this script
from torch.utils.flop_counter import FlopCounterMode

from components.data.record.tokenizer import EOS, PAD, SOS
from components.data.transforms.masking import input_size
from components.model import ModelBatch, beam_decode, build_model, greedy_decode, load_preset


def random_batch(config, images: int, boxes_per_image: int, info_tokens: int, device) -> ModelBatch:
    g = torch.Generator().manual_seed(0)
    n = images * boxes_per_image
    corners = torch.rand(n, 2, 2, generator=g).sort(dim=1).values
    captions = torch.randint(5, config.vocab_size, (n, config.caption_length), generator=g)
    captions[:, 0], captions[:, 6], captions[:, 7:] = SOS, EOS, PAD  # 5-token captions, as in the data
    side = input_size(config.grid)
    return ModelBatch(
        images=torch.randn(images, 3, side, side, generator=g),
        info_ids=torch.randint(5, config.vocab_size, (images, info_tokens), generator=g),
        image_index=torch.arange(images).repeat_interleave(boxes_per_image),
        boxes=torch.cat([corners[:, 0], corners[:, 1]], dim=1),
        neighbour_boxes=torch.rand(n, 2, 4, generator=g),
        neighbour_valid=torch.rand(n, 2, generator=g) > 0.2,
        captions=captions,
    ).to(device)


def train_step_fn(model, optimizer, batch):
    cuda = batch.images.device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(batch).logits[:, :-1].float()  # (N, Lc-1, V)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch.captions[:, 1:].reshape(-1), ignore_index=PAD
            )
        loss.backward()
        optimizer.step()

    return step


def step_flops(model, batch) -> int:
    with FlopCounterMode(display=False) as counter:
        logits = model(batch).logits
        logits.float().logsumexp(-1).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--boxes-per-image", type=int, default=5)
    parser.add_argument("--info-tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = load_preset(args.preset)
    model = build_model(config).to(args.device)
    batch = random_batch(config, args.images, args.boxes_per_image, args.info_tokens, args.device)
    n = batch.num_boxes
    results: dict[str, float] = {}

    model.eval()
    with torch.no_grad():
        for name, fn in [
            ("greedy_cached", lambda: greedy_decode(model, batch)),
            ("greedy_uncached", lambda: greedy_decode(model, batch, use_cache=False)),
            ("beam3_cached", lambda: beam_decode(model, batch, beam_size=3)),
            ("beam3_uncached", lambda: beam_decode(model, batch, beam_size=3, use_cache=False)),
        ]:
            results[f"decode_{name}_captions_per_s"] = n / timed(fn, args.device, args.repeats)

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    per_box = batch.one_image_per_box()
    image_major_s = timed(train_step_fn(model, optimizer, batch), args.device, args.repeats)
    per_box_s = timed(train_step_fn(model, optimizer, per_box), args.device, args.repeats)
    results["train_image_major_boxes_per_s"] = n / image_major_s
    results["train_one_image_per_box_boxes_per_s"] = n / per_box_s
    flops = step_flops(model, batch)
    peak = matmul_peak(args.device, args.matmul_size, args.repeats)
    results["train_step_gflop"] = flops / 1e9
    results["matmul_peak_gflops"] = peak / 1e9
    results["mfu_image_major"] = flops / image_major_s / peak

    r = results
    print(
        f"model bench: preset {args.preset}, device {args.device}, {args.images} images x "
        f"{args.boxes_per_image} boxes = {n} boxes, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(f"{'decoding (captions/s)':<34}{'cached':>10}{'uncached':>10}{'ratio':>8}")
    for kind in ("greedy", "beam3"):
        cached, uncached = r[f"decode_{kind}_cached_captions_per_s"], r[f"decode_{kind}_uncached_captions_per_s"]
        print(f"  {kind:<32}{cached:>10.1f}{uncached:>10.1f}{cached / uncached:>7.2f}x")
    beam_cost = r["decode_greedy_cached_captions_per_s"] / r["decode_beam3_cached_captions_per_s"]
    print(f"  {'greedy / beam3 (cached)':<52}{beam_cost:>7.2f}x")
    print(f"{'training (boxes/s)':<34}{'image-major':>12}{'per box':>10}{'ratio':>8}")
    ratio = r["train_image_major_boxes_per_s"] / r["train_one_image_per_box_boxes_per_s"]
    print(
        f"  {'CG step (fwd+bwd+AdamW)':<32}{r['train_image_major_boxes_per_s']:>12.1f}"
        f"{r['train_one_image_per_box_boxes_per_s']:>10.1f}{ratio:>7.2f}x"
    )
    print(
        f"MFU: {r['train_step_gflop']:.1f} GFLOP/step, matmul peak {r['matmul_peak_gflops']:.0f} GFLOP/s "
        f"({str(training_dtype(args.device)).removeprefix('torch.')} {args.matmul_size}^3) "
        f"-> MFU {100 * r['mfu_image_major']:.1f}% (image-major)"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), **results}, handle, indent=2)


if __name__ == "__main__":
    main()
