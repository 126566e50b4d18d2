"""The deployment files: Ray's own validation of ray_cluster.yaml, the KubeRay manifests, the image,
the systemd units and the cron line all run the same pinned Ray and the same entry point."""

import importlib.util
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


def manifests():
    folder = ROOT / "infra" / "kuberay"
    return (yaml.safe_load((folder / name).read_text()) for name in ("retrain-rayjob.yaml", "retrain-raycronjob.yaml"))


def test_the_kuberay_manifests_run_the_pinned_ray_image_and_the_retrain_flow():
    job, cron = manifests()
    assert (job["kind"], cron["kind"]) == ("RayJob", "RayCronJob")
    assert job["spec"]["jobId"] == "caponimage-retrain-manual"  # a retried submitter follows, never resubmits
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
