"""Small test doubles and helpers shared by the test modules."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
