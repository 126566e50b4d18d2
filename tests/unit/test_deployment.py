"""The deployment files: Ray's own validation of ray_cluster.yaml, the KubeRay manifests, the image,
the systemd units and the cron line all run the same pinned Ray and the same entry point."""

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RAY_VERSION = "2.60.0"
IMAGE = "YOUR-REGISTRY/caponimage:0.1.0"


def test_ray_validates_the_cluster_config_and_rejects_a_broken_copy():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["docker"]["image"] == IMAGE  # Python 3.11 and the pinned torch on every node
    assert config["file_mounts"] == {"/home/ray/.ray/auth_token": "~/.ray/auth_token"}  # no code: it is in the image
    for node in config["available_node_types"].values():
        assert node["node_config"]["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::")
    for command in config["head_start_ray_commands"][1:] + config["worker_start_ray_commands"][1:]:
        assert command.startswith("RAY_AUTH_MODE=token ray start")
    broken = {**config, "max_workers": "eight"}
    with pytest.raises(Exception, match="'eight' is not of type 'integer'"):
        validate_config(prepare_config(broken))


CRDS = ROOT / "tests" / "fixtures" / "kuberay-crds"


def strict_schema(schema: dict) -> dict:
    """A CRD's OpenAPI schema as JSON Schema that refuses unknown fields, as ``kubectl apply`` with
    strict field validation does (except where the CRD preserves unknown fields)."""
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) if isinstance(value, dict) else value for key, value in schema.items()}
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: strict_schema(sub) for name, sub in out[key].items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict_schema(sub) for sub in out[key]]
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("type") == "object" and "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


@functools.cache
def crd_validator(version: str, kind: str):
    import gzip

    import jsonschema

    text = gzip.decompress((CRDS / version / f"ray.io_{kind.lower()}s.yaml.gz").read_bytes())
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # a megabyte of YAML
    assert crd["spec"]["names"]["kind"] == kind
    served = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(strict_schema(served["schema"]["openAPIV3Schema"]))


def test_the_kuberay_manifests_pass_the_crds_of_the_kuberay_the_docs_require():
    for manifest in manifests():
        errors = [
            f"{'.'.join(map(str, e.path))}: {e.message}"
            for e in crd_validator("v1.7.0", manifest["kind"]).iter_errors(manifest)
        ]
        assert errors == [], manifest["kind"]
    _, cron = manifests()
    refused = [e for e in crd_validator("v1.6.2", "RayCronJob").iter_errors(cron)]
    assert any("'timeZone' was unexpected" in e.message for e in refused)  # the reason the docs say 1.7.0
    misspelt = {**cron, "spec": {**cron["spec"], "shedule": cron["spec"]["schedule"]}}
    assert any(
        "'shedule' was unexpected" in e.message for e in crd_validator("v1.7.0", "RayCronJob").iter_errors(misspelt)
    )
    docs = (ROOT / "infra" / "README.md").read_text() + (ROOT / "docs" / "deployment.md").read_text()
    assert "KubeRay >= 1.6" not in docs and "KubeRay 1.7" in docs and "feature gate" in docs


def manifests():
    folder = ROOT / "infra" / "kuberay"
    return (yaml.safe_load((folder / name).read_text()) for name in ("retrain-rayjob.yaml", "retrain-raycronjob.yaml"))


def test_the_kuberay_manifests_run_the_pinned_ray_image_and_the_retrain_flow():
    job, cron = manifests()
    assert (job["kind"], cron["kind"]) == ("RayJob", "RayCronJob")
    assert job["spec"]["jobId"] == "caponimage-retrain-manual"  # a retried submitter follows, never resubmits
    assert (
        job["metadata"]["generateName"] == "caponimage-retrain-" and "name" not in job["metadata"]
    )  # a new one each run
    template = dict(job["spec"])
    del template["jobId"]  # one id per tick: KubeRay derives it from the tick's RayJob name
    assert cron["spec"]["jobTemplate"] == template
    assert len(cron["spec"]["schedule"].split()) == 5 and cron["spec"]["timeZone"] == "Etc/UTC"
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == RAY_VERSION and cluster["authOptions"] == {"mode": "token"}
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    assert {c["image"] for pod in pods for c in pod["spec"]["containers"]} == {IMAGE}
    script = job["spec"]["entrypoint"].split()[1]
    assert script == "/home/ray/caponimage/flows/retrain.py" and (ROOT / "flows" / "retrain.py").is_file()


def test_the_image_is_rays_own_with_the_packages_make_setup_installs():
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{RAY_VERSION}-py311-gpu" in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    wanted = set(
        re.search(r"--no-install-recommends \\\n\s+(.+?);", makefile).group(1).replace(">/dev/null", "").split()
    )
    assert wanted and all(package in dockerfile for package in wanted)
    assert "ray[default,data,train,tune,serve]==2.60.0" in (ROOT / "pyproject.toml").read_text()
    assert "WORKDIR /home/ray/caponimage" in dockerfile and "COPY --chown=ray:users flows ./flows" in dockerfile


def test_the_jobs_send_their_runs_to_the_tracking_server_the_manifests_define():
    documents = list(yaml.safe_load_all((ROOT / "infra" / "kuberay" / "mlflow-server.yaml").read_text()))
    service = next(d for d in documents if d["kind"] == "Service")
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    port = service["spec"]["ports"][0]["port"]
    address = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"
    for manifest in manifests():
        spec = manifest["spec"].get("jobTemplate", manifest["spec"])
        runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        assert runtime_env["env_vars"]["MLFLOW_TRACKING_URI"] == address
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["key"] == "uri"  # never in the manifest
    assert env["MLFLOW_PORT"]["value"] == str(container["ports"][0]["containerPort"])
    assert container["image"] == IMAGE and "psycopg[binary]" in (ROOT / "infra" / "Dockerfile").read_text()
    recipe = (ROOT / "infra" / "mlflow" / "mlflow-server.env.example").read_text()
    in_recipe = set(re.findall(r"^(MLFLOW_\w+)=", recipe, re.M))
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_PORT"} <= set(env) & in_recipe


def project_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_every_image_tag_is_the_version_of_pyproject():
    files = [ROOT / "ray_cluster.yaml", *sorted((ROOT / "infra" / "kuberay").glob("*.yaml"))]
    tags = {m for f in files for m in re.findall(r"YOUR-REGISTRY/caponimage:([\w.\-]+)", f.read_text())}
    assert tags == {project_version()}
    made = subprocess.run(["make", "-n", "image"], cwd=ROOT, capture_output=True, text=True).stdout
    assert f"-t YOUR-REGISTRY/caponimage:{project_version()} ." in made


def dockerfile_steps() -> list[str]:
    text = (ROOT / "infra" / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()[:4] in ("COPY", "RUN ")]


def test_the_image_installs_the_locked_dependencies_before_the_code():
    steps = dockerfile_steps()
    keys = ("-c constraints.txt -r /tmp/requirements.txt", "COPY --chown=ray:users components", "--no-deps .")
    position = {key: next(i for i, s in enumerate(steps) if key in s) for key in keys}
    assert list(position.values()) == sorted(position.values())  # dependencies, the code, the package alone
    first_code = position["COPY --chown=ray:users components"]
    assert not any("components" in s or "flows" in s for s in steps[:first_code] if s.startswith("COPY"))


def test_the_images_dependency_step_resolves_to_exactly_the_constraints(tmp_path):
    """The Dockerfile's dependency step as pip resolves it here (a dry run: no daemon, no download):
    every package it would install is at the version constraints.txt holds."""
    import json
    import tomllib

    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]))
    step = next(s for s in dockerfile_steps() if "-r /tmp/requirements.txt" in s)
    step = step.split("pip install --no-cache-dir ")[1]
    extra = [word.strip("'") for word in step.split("-r /tmp/requirements.txt")[1].split("'") if word.strip()]
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "-c",
               str(ROOT / "constraints.txt"), "-r", str(requirements), *extra, "--report", str(report)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    installs = json.loads(report.read_text())["install"]
    resolved = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in installs}
    assert {"torch", "ray", "mlflow", "psycopg"} <= set(resolved)
    assert {name: v for name, v in resolved.items() if pins.get(name) != v} == {}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    for name in ("caponimage-retrain.service", "caponimage-retrain.timer"):
        text = (ROOT / "infra" / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/caponimage/.venv/bin/python", sys.executable))
    units = [str(tmp_path / "caponimage-retrain.service"), str(tmp_path / "caponimage-retrain.timer")]
    verified = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    timer = (tmp_path / "caponimage-retrain.timer").read_text()
    assert "Persistent=true" in timer and "OnCalendar=*-*-* 02:30:00 UTC" in timer
    server = (ROOT / "infra" / "mlflow" / "mlflow-server.service").read_text()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    (tmp_path / "mlflow-server.service").write_text(server.replace("/opt/mlflow/.venv/bin/mlflow", mlflow_bin))
    unit = str(tmp_path / "mlflow-server.service")
    verified = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
    assert verified.returncode == 0 and "mlflow-server.service" not in verified.stderr, verified.stderr


def test_the_cron_line_skips_a_start_while_one_runs():
    lines = [x for x in (ROOT / "infra" / "cron" / "caponimage-retrain").read_text().splitlines() if x[:1].isdigit()]
    (line,) = lines
    fields = line.split()
    assert fields[:5] == ["30", "2", "*", "*", "*"] and fields[5] == "caponimage"
    assert fields[6:8] == ["flock", "-n"] and "infra/submit_retrain.py" in line


def scratch_root(tmp_path: Path) -> Path:
    """A root with this machine's user database, and the project's venv where the installer puts its
    own (it has Ray's job client: the installer keeps it instead of installing Ray again)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    (root / "opt" / "caponimage").mkdir(parents=True)
    (root / "opt" / "caponimage" / ".venv").symlink_to(Path(sys.executable).parents[1])
    return root


def install(root: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROOT": str(root)}
    return subprocess.run(["bash", str(ROOT / "infra" / "install_scheduler.sh"), *flags], env=env,
                          capture_output=True, text=True)  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None, reason="useradd --prefix needs root")
def test_the_scheduler_installer_sets_up_the_host_and_the_cron_line_then_logs(tmp_path):
    root = scratch_root(tmp_path)
    done = install(root, "--cron")
    assert done.returncode == 0, done.stderr
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("caponimage:"))
    assert user[5:] == ["/opt/caponimage", "/usr/sbin/nologin"]
    settings = root / "etc" / "caponimage" / "retrain.env"
    assert oct(settings.stat().st_mode & 0o777) == "0o640" and settings.stat().st_gid == int(user[3])
    logs = root / "var" / "log" / "caponimage"
    assert logs.stat().st_uid == int(user[2])
    assert (root / "opt" / "caponimage" / "infra" / "submit_retrain.py").is_file()
    # cron's shell runs the line as written (paths moved into the scratch root); no cluster listens there
    with socket_port() as closed:
        settings.write_text(settings.read_text().replace("http://ray-head.internal:8265", f"http://127.0.0.1:{closed}"))
    cron = (root / "etc" / "cron.d" / "caponimage-retrain").read_text()
    command = " ".join(next(line for line in cron.splitlines() if line[:1].isdigit()).split()[6:])
    for path in ("/opt/caponimage", "/etc/caponimage", "/var/log/caponimage"):
        command = command.replace(path, f"{root}{path}")
    command = command.replace("/tmp/caponimage-retrain.lock", str(tmp_path / "lock"))
    assert subprocess.run(["/bin/sh", "-c", command], timeout=120).returncode == 77  # no token copied yet
    said = (logs / "retrain.log").read_text()
    assert "wants its token" in said and "Traceback" not in said
    token = root / "etc" / "caponimage" / "ray_auth_token"
    token.write_text("0" * 32 + "\n")
    settings.write_text(settings.read_text().replace("/etc/caponimage/ray_auth_token", str(token)))
    assert subprocess.run(["/bin/sh", "-c", command], timeout=120).returncode == 69  # nothing listens there
    assert f"cannot reach the Ray cluster at http://127.0.0.1:{closed}" in (logs / "retrain.log").read_text()
    shutil.rmtree(logs)  # without the installer's folder the redirect fails and nothing runs at all
    failed = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "retrain.log" in failed.stderr and not logs.exists()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None, reason="useradd --prefix needs root")
def test_the_scheduler_installer_puts_the_timer_in_place_and_keeps_edited_settings(tmp_path):
    root = scratch_root(tmp_path)
    assert install(root).returncode == 0
    settings = root / "etc" / "caponimage" / "retrain.env"
    settings.write_text("RAY_ADDRESS=http://edited:8265\n")
    done = install(root)  # a second run changes nothing a person edited
    assert done.returncode == 0 and settings.read_text() == "RAY_ADDRESS=http://edited:8265\n"
    unit = (root / "etc" / "systemd" / "system" / "caponimage-retrain.service").read_text()
    assert "EnvironmentFile=/etc/caponimage/retrain.env" in unit
    assert (root / "etc" / "systemd" / "system" / "caponimage-retrain.timer").is_file()
    assert "Ray 2.60.0" in done.stdout and install(root, "--weekly").returncode == 2


@contextlib.contextmanager
def socket_port():
    """A loopback port nothing listens on (bound, then closed when the block ends)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


def load_submitter():
    spec = importlib.util.spec_from_file_location("submit_retrain", ROOT / "infra" / "submit_retrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_submitter_fixes_one_submission_per_slot(tmp_path):
    submitter = load_submitter()
    assert submitter.submission_id("2026-11-23") == "caponimage-retrain-2026-11-23"
    assert submitter.entrypoint("s3://b/crawls", "s3://b/my data", ["--preset", "paper"]) == (
        "python /home/ray/caponimage/flows/retrain.py --crawl s3://b/crawls --dataset 's3://b/my data' --preset paper"
    )
    env = {"MLFLOW_TRACKING_URI": "http://m:5000", "AWS_SECRET_ACCESS_KEY": "x", "AWS_ENDPOINT_URL_S3": "http://s3"}
    assert submitter.job_env(env) == {"MLFLOW_TRACKING_URI": "http://m:5000", "AWS_ENDPOINT_URL_S3": "http://s3"}
    settings = tmp_path / "retrain.env"
    settings.write_text("# settings\nRAY_ADDRESS=http://head:8265\nCAPONIMAGE_ARGS='--preset paper'\n")
    assert submitter.read_env_file(str(settings)) == {
        "RAY_ADDRESS": "http://head:8265",
        "CAPONIMAGE_ARGS": "--preset paper",
    }
    settings.write_text("not a setting\n")
    with pytest.raises(SystemExit, match="line 1: expected KEY=VALUE"):
        submitter.read_env_file(str(settings))
    example = submitter.read_env_file(str(ROOT / "infra" / "retrain.env.example"))
    assert {"RAY_ADDRESS", "CAPONIMAGE_CRAWL", "CAPONIMAGE_DATASET", "MLFLOW_TRACKING_URI"} <= set(example)
    assert example["RAY_AUTH_MODE"] == "token" and example["RAY_AUTH_TOKEN_PATH"].startswith("/etc/caponimage/")
