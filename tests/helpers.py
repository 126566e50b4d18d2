"""Small test doubles and helpers shared by the test modules."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEAM_SERVER = "team-server"  # a tracking store parameter: the PostgreSQL-backed mlflow server (``team_mlflow``)


def load_flow(name: str):
    """A flow script (``flows/<name>.py``) as a module, to call its ``main(argv)`` in-process."""
    spec = importlib.util.spec_from_file_location(f"flow_{name}", REPO / "flows" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingTally:
    """Stands in for the ``RejectionTally`` actor handle: ``tally.add.remote(reason, message)`` records."""

    def __init__(self):
        self.seen: list[tuple[str, str]] = []
        self.add = self

    def remote(self, reason: str, message: str) -> None:
        self.seen.append((reason, message))


def tracking_store(request, tmp_path) -> str:
    """The tracking URI for a test parametrized over stores: a fresh sqlite file, or the team server."""
    if request.param == TEAM_SERVER:
        return request.getfixturevalue("team_mlflow")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def both_stores():
    """``params`` for a fixture that runs its tests on sqlite and on the team server (marked ``services``)."""
    return ["sqlite", pytest.param(TEAM_SERVER, marks=pytest.mark.services)]


def chromium(width: int = 1300, height: int = 900):
    """Debian's Chromium, headless, driven by its chromedriver through Selenium (nothing downloaded)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
