"""The command line of the training flows: a preset, an optional YAML file, ``--set`` overrides."""

from __future__ import annotations

import argparse

from components.cli import HelpFormatter
from components.config.job import JobConfig
from components.config.loader import config_yaml, load_job_config, preset_names, resolve_locations


def job_parser(description: str, default_preset: str = "small") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument("--preset", default=default_preset, choices=preset_names(), help="configuration preset")
    parser.add_argument("--config", metavar="FILE", help="a YAML file merged over the preset (path or URI)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set train.steps=1000 --set model.d_model=512",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration as YAML and exit")
    return parser


def parse_job(args: argparse.Namespace, task: str, init_from: str | None = None) -> JobConfig:
    """The validated, resolved job config (``ConfigError`` naming the key before any work).

    With ``--print-config`` it prints the configuration and exits, as ``--help`` does.
    """
    overrides = list(args.overrides) + ([f"init_from={init_from}"] if init_from else [])
    job = resolve_locations(load_job_config(args.preset, overrides, task=task, config_file=args.config))
    if args.print_config:
        print(config_yaml(job), end="")
        raise SystemExit(0)
    return job
