"""The command line of the training flows: a preset, an optional YAML file, ``--set`` overrides."""

from __future__ import annotations

import argparse

from components.training.config import JobConfig, load_job_config, preset_names, resolve_locations


def job_parser(description: str, default_preset: str = "small") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--preset",
        default=default_preset,
        choices=preset_names(),
        help=f"configuration preset (default {default_preset})",
    )
    parser.add_argument("--config", help="a YAML file merged over the preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set train.steps=1000 --set model.d_model=512",
    )
    return parser


def parse_job(args: argparse.Namespace, task: str, init_from: str | None = None) -> JobConfig:
    """The validated, resolved job config (raises ConfigError naming the key before any work)."""
    overrides = list(args.overrides) + ([f"init_from={init_from}"] if init_from else [])
    return resolve_locations(load_job_config(args.preset, overrides, task=task, config_file=args.config))
