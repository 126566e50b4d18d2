"""Online captioning on Ray Serve, started on this machine: the JSON API and the captioning page.

    python flows/serve.py                                       # models:/caponimage@champion, sqlite:///mlflow.db
    python flows/serve.py --model models:/caponimage/3 --port 8080 --replicas 2
    python flows/serve.py --shadow-model models:/caponimage@challenger --shadow-percent 10

Open http://127.0.0.1:8000/ (the page) or POST a request to /caption (docs/serving.md). Replicas
follow the registry: when `champion` moves, they switch versions without dropping a request. On a
cluster: `serve deploy infra/serve/caponimage.yaml` (autoscaling and health checks set there).
"""

from __future__ import annotations

import argparse
import os
import sys

from components.cli import HelpFormatter, run
from components.errors import ConfigError

DEFAULT_MODEL = "models:/caponimage@champion"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="models:/ or runs:/ URI, MLflow run id, checkpoint")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    parser.add_argument("--host", default="127.0.0.1", help="where the HTTP proxy listens")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--replicas", type=int, default=1, help="model replicas (each loads the model once)")
    parser.add_argument("--poll-s", type=float, default=10.0, help="how often replicas read the alias")
    parser.add_argument("--shadow-model", help="also caption a share of the requests with this model")
    parser.add_argument("--shadow-percent", type=float, default=0.0, help="that share, in percent")
    parser.add_argument("--shadow-log", default="outputs/shadow", help="where both answers are appended")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        raise ConfigError("--replicas", f"must be at least 1 (got {args.replicas})")
    if not 0 < args.port < 65536:
        raise ConfigError("--port", f"must be a TCP port (got {args.port})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # 1. arguments, checked
    # Ray, MLflow and torch load from here on: --help and bad arguments answer at once
    from ray import serve

    from components.cluster import init_ray
    from components.serving.online import Captioner, serve_args

    app_args = serve_args(as_flags=True, model=args.model, tracking_uri=args.tracking_uri, poll_s=args.poll_s,
                          shadow_model=args.shadow_model, shadow_percent=args.shadow_percent,
                          shadow_log=args.shadow_log)  # fmt: skip
    init_ray()  # 2. a local Ray cluster (or RAY_ADDRESS)
    serve.start(http_options={"host": args.host, "port": args.port})  # 3. the HTTP proxy
    app = Captioner.options(num_replicas=args.replicas).bind(app_args.model_dump())
    print(f"captioning with {args.model} at http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    serve.run(app, name="caponimage", route_prefix="/", blocking=True)  # 4. serve until stopped
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
