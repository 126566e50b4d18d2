"""The MLflow UI pictures in docs/images/, taken from a real store with Debian's headless Chromium.

    .venv/bin/python docs/mlflow_screenshots.py [--tracking-uri sqlite:///mlflow.db] [--artifacts mlartifacts]

Serves the store with ``mlflow server`` on a free loopback port (as the suite's team server is
started: ``tests/servers.py``) and saves, in ``--out``:

    mlflow_runs.png      the experiment's runs table in the Model training layout (the README's link)
    mlflow_compare.png   the charts view of the two newest pre-training runs, side by side
    mlflow_run.png       the newest pre-training run's own charts, in their sections
    mlflow_registry.png  the registered model's versions, their aliases and tags
    mlflow_retrain.png   the newest retrain run's page: its outcome, decision and side-by-side metrics
                         (only when the store has one; its nested runs are in mlflow_runs.png)

The store is the one ``make run`` writes (twice, for the comparison) and a retrain adds to. The
clicks name MLflow 3.17's page elements; another MLflow may need new ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the suite's browser and server helpers, not a copy of them

from helpers import chromium  # noqa: E402
from servers import mlflow_server  # noqa: E402

TRAINING = "workflowType=machine_learning"  # MLflow 3's Model training layout (else the GenAI overview)
EXPAND = "button[data-component-id$='runnamecellrenderer.tsx_46']"  # the runs table's expand-children button


def newest(client: MlflowClient, experiment_id: str, where: str, count: int = 1) -> list:
    order = ["attributes.start_time DESC"]
    return client.search_runs([experiment_id], where, order_by=order, max_results=count)


def settle(browser, ready: str, seconds: float = 4.0) -> None:
    """Wait until the page shows ``ready`` (a text), let its charts draw, then close the assistant panel
    that covers the right side."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 120).until(lambda b: ready in b.find_element(By.TAG_NAME, "body").text)
    browser.execute_script("document.activeElement && document.activeElement.blur()")  # no search-box tooltip
    time.sleep(seconds)
    for button in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()
    time.sleep(1)


def runs_table(browser, base: str, experiment_id: str, ready: str, expand: int = 0) -> None:
    """The runs table once it shows the run named ``ready``; the first ``expand`` runs with children
    expanded."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/#/experiments/{experiment_id}/runs?{TRAINING}")
    settle(browser, ready)
    for button in browser.find_elements(By.CSS_SELECTOR, EXPAND)[:expand]:
        button.click()
        time.sleep(2)


def compare(browser, base: str, experiment_id: str, runs: list, charts: str) -> None:
    """The charts view with only ``runs`` in the table (the chart view draws the table's runs), its
    charts filtered by ``charts`` (the view's own search box, a regular expression)."""
    from urllib.parse import quote

    search = "attributes.run_id IN ({})".format(", ".join(f"'{run.info.run_id}'" for run in runs))
    browser.get(
        f"{base}/#/experiments/{experiment_id}/runs?{TRAINING}&compareRunsMode=CHART&searchFilter={quote(search)}"
    )
    filter_charts(browser, charts)


def filter_charts(browser, charts: str) -> None:
    """Only the charts whose names match ``charts`` (the view's own search box, a regular expression)."""
    from selenium.webdriver.common.by import By

    settle(browser, "negatives", 2)  # the sections are drawn
    browser.find_element(By.CSS_SELECTOR, "input[placeholder='Search metric charts']").send_keys(charts)
    settle(browser, "CIDEr", 8)


def take(tracking_uri: str, artifacts: str, out: Path, experiment: str, model: str) -> list[Path]:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"{tracking_uri} has no experiment {experiment!r}: run `make run` first")
    experiment_id = found.experiment_id
    pretrains = newest(client, experiment_id, "tags.task = 'pretrain'", 2)
    retrains = newest(client, experiment_id, "tags.task = 'retrain'")
    if not pretrains:
        raise SystemExit(f"no pre-training run in {experiment!r}: run `make run` first")
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with mlflow_server(tracking_uri, artifacts, workers=1) as base:
        browser = chromium(1600, 1300)
        try:

            def save(name: str) -> None:
                path = out / name
                browser.save_screenshot(str(path))
                saved.append(path)

            runs_table(browser, base, experiment_id, pretrains[0].info.run_name, expand=2)
            save("mlflow_runs.png")
            compare(browser, base, experiment_id, pretrains, "loss_generation|CIDEr|boxes_per_s")
            save("mlflow_compare.png")
            browser.get(
                f"{base}/#/experiments/{experiment_id}/runs/{pretrains[0].info.run_id}/model-metrics?{TRAINING}"
            )
            filter_charts(browser, "loss|CIDEr|matching_accuracy|another|neighbour")
            save("mlflow_run.png")
            browser.get(f"{base}/#/models/{model}?{TRAINING}")
            settle(browser, "Version")
            save("mlflow_registry.png")
            if retrains:
                browser.get(f"{base}/#/experiments/{experiment_id}/runs/{retrains[0].info.run_id}?{TRAINING}")
                settle(browser, "retrain_outcome")
                save("mlflow_retrain.png")
        finally:
            browser.quit()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=f"sqlite:///{REPO / 'mlflow.db'}")
    parser.add_argument("--artifacts", default=str(REPO / "mlartifacts"), help="the store's artifact folder")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--experiment", default="caponimage")
    parser.add_argument("--model", default="caponimage", help="the registered model")
    args = parser.parse_args(argv)
    for path in take(args.tracking_uri, args.artifacts, args.out, args.experiment, args.model):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
