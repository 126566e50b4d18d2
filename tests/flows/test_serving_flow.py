"""The online service for real: Ray Serve on the session's local cluster, two tiny registered model
versions in a sqlite registry, requests over HTTP on loopback, and the page in Debian's Chromium."""

import base64
import io
import json
import os
import threading
import time
from pathlib import Path

import mlflow
import pytest
import requests as http
import torch
from helpers import chromium
from mlflow.tracking import MlflowClient
from PIL import Image
from servers import free_port

from components.config import load_job_config
from components.data.prepare import with_vocabulary
from components.data.release.table import read_split
from components.data.transforms.requests import dataset_request
from components.model import build_model
from components.model.checkpoint import save_checkpoint
from components.tracking.pyfunc import CapOnImageModel, example_request, log_pyfunc
from components.tracking.runs import TrackedRun

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))  # pictures a person looks at
NAME = "caponimage"


@pytest.fixture(scope="module")
def products(tiny_dataset):
    root, _, _ = tiny_dataset
    return [dataset_request(str(root / "images"), r["image_id"], r["record"]) for r in read_split(str(root), "val", 3)]


@pytest.fixture(scope="module")
def registry(tiny_dataset, products, tmp_path_factory):
    """Versions 1 (champion) and 2 (challenger): two tiny untrained models that caption differently."""
    _, _, tokenizer = tiny_dataset
    folder = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving", str(folder / "artifacts")))
    checkpoints = []
    for seed in (0, 1):
        job = with_vocabulary(load_job_config("tiny"), tokenizer)
        torch.manual_seed(seed)
        checkpoint = folder / f"checkpoint{seed}"
        save_checkpoint(checkpoint, build_model(job.model).state_dict(), {"step": 0}, job.as_dict(), tokenizer)
        example = example_request(products[0]["image"], products[0]["info"], products[0]["boxes"])
        with mlflow.start_run() as run:
            info = log_pyfunc(TrackedRun(uri, run.info.run_id), checkpoint, example)
        mlflow.register_model(info.model_uri, NAME)
        checkpoints.append(checkpoint)
    client = MlflowClient(uri)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    mlflow.set_tracking_uri(None)
    return uri, checkpoints, folder


@pytest.fixture(scope="module")
def service(ray_cluster, registry):
    from ray import serve

    from components.serving.online import Captioner, serve_args

    uri, _, folder = registry
    port = free_port()
    args = serve_args(model=f"models:/{NAME}@champion", tracking_uri=uri, poll_s=0.5,
                      shadow_model=f"models:/{NAME}@challenger", shadow_percent=100,
                      shadow_log=str(folder / "shadow"))  # fmt: skip
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Captioner.options(num_replicas=1).bind(args.model_dump()), name="caponimage", route_prefix="/")
    yield f"http://127.0.0.1:{port}", folder / "shadow"
    serve.shutdown()


def request_body(product, **params):
    body = {"image": base64.b64encode(product["image"]).decode(), "info": product["info"], "boxes": product["boxes"]}
    return {**body, "id": product["id"].replace("/", "-"), "params": params}


def test_the_service_captions_each_box_in_order_as_the_champion_does(service, products, registry):
    url, _ = service
    _, checkpoints, _ = registry
    local = CapOnImageModel.from_checkpoint(checkpoints[0])
    for product in products:
        answer = http.post(f"{url}/caption", json=request_body(product), timeout=60)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["model"] == NAME and result["model_version"] == "1"
        frame = example_request(product["image"], product["info"], product["boxes"])
        assert result["captions"] == list(local.predict(None, frame)["captions"][0])
    rendered = http.post(f"{url}/caption", json=request_body(products[0], render=True, checks="fit"), timeout=60).json()
    picture = Image.open(io.BytesIO(base64.b64decode(rendered["rendered_png"])))
    assert picture.size == Image.open(io.BytesIO(products[0]["image"])).size
    assert [v["caption"] for v in rendered["verdicts"]] == rendered["captions"]
    assert http.get(f"{url}/healthz", timeout=10).json() == {"status": "ok", "model": NAME, "model_version": "1"}


def test_bad_requests_get_a_400_naming_the_field_and_the_replica_keeps_answering(service, products):
    url, _ = service
    good = request_body(products[0])
    bad = [
        (b"{not json", "body"),
        (json.dumps({**good, "boxes": [good["boxes"][0], "0.5_0.5_0.2_0.9"]}), "boxes[1]"),
        (json.dumps({**good, "image": base64.b64encode(b"GIF89a").decode()}), "image"),
        (json.dumps({**good, "params": {"beam_size": 99}}), "params.beam_size"),
    ]
    for data, field in bad:
        answer = http.post(f"{url}/caption", data=data, headers={"Content-Type": "application/json"}, timeout=60)
        assert (answer.status_code, answer.json()["field"]) == (400, field), answer.text
    form = {"info": products[0]["info"], "boxes": "\n".join(products[0]["boxes"])}
    upload = http.post(f"{url}/caption/upload", data=form, files={"image": ("p.png", products[0]["image"])}, timeout=60)
    assert upload.status_code == 200 and len(upload.json()["captions"]) == len(products[0]["boxes"])
    missing = http.post(f"{url}/caption/upload", data=form, timeout=60)
    assert (missing.status_code, missing.json()["field"]) == (400, "image")


def test_shadow_answers_are_logged_beside_the_primary_ones(service, products):
    url, shadow_log = service
    http.post(f"{url}/caption", json=request_body(products[1]), timeout=60).raise_for_status()
    deadline, lines = time.monotonic() + 30, []
    while time.monotonic() < deadline and not any(line["id"] == products[1]["id"].replace("/", "-") for line in lines):
        time.sleep(0.2)
        lines = [json.loads(t) for f in shadow_log.glob("*.jsonl") for t in f.read_text().splitlines()]
    line = next(line for line in lines if line["id"] == products[1]["id"].replace("/", "-"))
    assert (line["primary"]["model_version"], line["shadow"]["model_version"]) == ("1", "2")
    assert len(line["shadow"]["captions"]) == len(products[1]["boxes"]) and isinstance(line["same"], bool)


def test_the_page_captions_an_uploaded_photo_in_chromium(service, products, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _ = service
    photo = tmp_path / "product.png"
    photo.write_bytes(products[0]["image"])
    browser = chromium()
    try:
        browser.get(f"{url}/")
        assert browser.title.startswith("CapOnImage")
        browser.find_element(By.ID, "file").send_keys(str(photo))
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "canvas").is_displayed())
        browser.find_element(By.ID, "info").send_keys(products[0]["info"])
        browser.find_element(By.ID, "boxes").send_keys("\n".join(products[0]["boxes"]))
        Select(browser.find_element(By.ID, "checks")).select_by_value("compliance,grounding,fit")
        browser.find_element(By.ID, "go").click()
        boxes = len(products[0]["boxes"])
        WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#captions > li")) == boxes)
        assert browser.find_element(By.ID, "error").text == ""
        assert browser.execute_script("return document.getElementById('result').naturalWidth") > 0
        assert browser.find_element(By.ID, "download").get_attribute("href").startswith("data:image/png;base64,")
        assert "version 1" in browser.find_element(By.ID, "meta").text
        browser.execute_script("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "serving_page.png"))
    finally:
        browser.quit()


def test_a_champion_switch_under_load_fails_no_request(service, products, registry):
    """Four clients keep asking while `champion` moves from 1 to 2: every request is answered, and
    each client sees version 1 then version 2, never back."""
    url, _ = service
    uri, _, _ = registry
    seen: dict[int, list[tuple[int, str]]] = {n: [] for n in range(4)}

    def client(number: int) -> None:
        deadline = time.monotonic() + 90
        after_switch = 0
        while time.monotonic() < deadline and after_switch < 3:
            answer = http.post(f"{url}/caption", json=request_body(products[number % len(products)]), timeout=60)
            seen[number].append((answer.status_code, answer.json().get("model_version")))
            after_switch += answer.json().get("model_version") == "2"

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(2)
    MlflowClient(uri).set_registered_model_alias(NAME, "champion", "2")
    for thread in clients:
        thread.join(120)
    answers = [a for per_client in seen.values() for a in per_client]
    assert {status for status, _ in answers} == {200}
    for per_client in seen.values():
        versions = [version for _, version in per_client]
        assert versions == sorted(versions) and versions[-1] == "2"  # 1s then 2s
    assert {version for _, version in answers} == {"1", "2"}
