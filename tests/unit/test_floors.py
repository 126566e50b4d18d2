"""The library's floors: an import only ever goes down, our own imports sit at the top of each file,
the model and data floors run without Ray or MLflow, and the flows stay thin checklists."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "components"
# Bottom up. errors and cli: typed errors and the one place that turns them into exit codes; progress:
# bars and log lines for long work; redaction: credentials out of every message and log line. storage:
# paths and URIs. config: every section, presets, the --set loader (it reads files through storage).
# cluster: Ray up. Then the data contract, the model and its I/O, the checks a caption must pass to be
# published, the MLflow adapter, evaluation,
# training, serving, retraining, which runs all of them in turn, and what the benches share. Flows sit on
# top of all of it.
FLOORS = {
    "errors": 0,
    "cli": 0,
    "progress": 0,
    "redaction": 0,
    "processes": 0,
    "metric_names": 0,
    "storage": 1,
    "config": 2,
    "cluster": 3,
    "data": 4,
    "model": 5,
    "publishing": 6,
    "tracking": 7,
    "evaluation": 8,
    "training": 9,
    "serving": 10,
    "retraining": 11,
    "bench": 12,
}
# The rooms of the data floor, bottom up: a room imports its own modules and the rooms below it, never
# a room beside it or above it.
DATA_ROOMS = {
    "record": 0,
    "release": 1,
    "transforms": 2,
    "pipeline": 3,
    "ingest": 3,
    "pictures": 3,
    "synthetic": 4,
    "prepare": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int:
    top = module.split(".")[1]
    assert top in FLOORS, f"{module} is on no floor: add it to FLOORS (and to the layout in docs/development.md)"
    return FLOORS[top]


def imports(path: Path):
    """(line, imported module, inside a function or class) for every import in a file."""
    tree = ast.parse(path.read_text("utf-8"))
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    nested = {id(n) for scope in ast.walk(tree) if isinstance(scope, scopes) for n in ast.walk(scope)}
    for node in ast.walk(tree):
        inside = id(node) in nested
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, inside
        elif isinstance(node, ast.ImportFrom) and node.module == "components":  # from components import storage
            for alias in node.names:
                yield node.lineno, f"components.{alias.name}", inside
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module, inside


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_on_a_floor():
    for path in SOURCES:
        if path != PACKAGE / "__init__.py":
            floor(module_name(path))  # asserts


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_import_runs_up_the_floors(path):
    if path == PACKAGE / "__init__.py":
        return
    source = module_name(path)
    upward = [
        f"line {line}: {source} (floor {floor(source)}) imports {target} (floor {floor(target)})"
        for line, target, _ in imports(path)
        if target.startswith("components.") and floor(target) > floor(source)
    ]
    assert not upward, "\n".join(upward)


def room(module: str) -> str:
    parts = module.split(".")
    assert len(parts) > 2 and parts[2] in DATA_ROOMS, f"{module} is in no room of data/: add it to DATA_ROOMS"
    return parts[2]


DATA_SOURCES = [p for p in SOURCES if module_name(p).startswith("components.data.")]


def test_every_data_module_is_in_a_room():
    assert len(DATA_SOURCES) > 30
    for path in DATA_SOURCES:
        room(module_name(path))  # asserts


@pytest.mark.parametrize("path", DATA_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_data_rooms_import_only_themselves_and_rooms_below(path):
    source = room(module_name(path))
    wrong = [
        f"line {line}: {source} (room {DATA_ROOMS[source]}) imports {target}"
        for line, target, _ in imports(path)
        if target.startswith("components.data.")
        and room(target) != source
        and DATA_ROOMS[room(target)] >= DATA_ROOMS[source]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_room_check_sees_a_sideways_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from components.data.ingest.crawl import product_info\n", "utf-8")
    [(_, target, _)] = imports(probe)
    assert room(target) == "ingest" and DATA_ROOMS[room(target)] == DATA_ROOMS["pipeline"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_our_own_imports_are_at_the_top(path):
    hidden = [
        f"line {line}: {target}" for line, target, inside in imports(path) if inside and target.startswith("components")
    ]
    assert not hidden, f"{path.relative_to(REPO)} hides imports of our own modules in functions:\n" + "\n".join(hidden)


@pytest.mark.parametrize("floor_name", ["config", "data", "model", "publishing"])
def test_lower_floors_run_without_ray_or_mlflow(floor_name):
    """The model and the publishing checks never import Ray or MLflow (the pyfunc model runs them where
    neither is installed); data imports Ray only where the pipeline runs it."""
    found = []
    for path in sorted((PACKAGE / floor_name).rglob("*.py")):
        for line, target, inside in imports(path):
            heavy = target.split(".")[0] in ("ray", "mlflow")
            if heavy and not (floor_name == "data" and target.split(".")[0] == "ray" and inside):
                found.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not found, "\n".join(found)


def test_only_tracking_talks_to_mlflow():
    """MLflow sits behind ``tracking/`` (the pyfunc model's own code, which MLflow loads, lives there too):
    every other floor logs through a ``TrackedRun`` and reads the registry through ``Registry``."""
    found = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for path in SOURCES
        if not module_name(path).startswith("components.tracking")
        for line, target, _ in imports(path)
        if target.split(".")[0] == "mlflow"
    ]
    assert not found, "\n".join(found)


def test_the_mlflow_rule_sees_an_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from mlflow.tracking import MlflowClient\n", "utf-8")
    assert [t.split(".")[0] for _, t, _ in imports(probe)] == ["mlflow"]


# Where batches of encoded rows are read by column name: a name must be a column of ``EncodedRow``, so
# that a renamed column fails here rather than inside a Ray worker.
ENCODED_READERS = (
    "components/model/batches.py",
    "components/model/inference.py",
    "components/evaluation/predict.py",
    "components/data/transforms/encoding.py",
    "components/training/validation.py",
    "components/bench/study.py",
)


def column_reads(path: Path, names=("rows", "batch")) -> list[tuple[int, str]]:
    """(line, column) of every ``rows["column"]`` / ``batch["column"]`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        named = isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in names
        if named and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            found.append((node.lineno, node.slice.value))
    return found


@pytest.mark.parametrize("relative", ENCODED_READERS)
def test_encoded_rows_are_read_by_the_schemas_column_names(relative):
    from components.data.transforms.encoding import ENCODED_COLUMNS

    reads = column_reads(REPO / relative)
    assert reads, f"{relative} reads no encoded column: take it off ENCODED_READERS"
    unknown = [f"line {line}: {name}" for line, name in reads if name not in ENCODED_COLUMNS]
    assert not unknown, f"{relative} reads columns an encoded row does not have:\n" + "\n".join(unknown)


def test_the_column_check_sees_a_renamed_column(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('def f(rows):\n    return rows["n_box"]\n', "utf-8")
    assert column_reads(probe) == [(2, "n_box")]


# What only evaluation may know: the synthetic crawl's truth (which input owns each caption part) and
# the oracle built on it. Training and the model never read them, so no score comes from a leak.
ANSWERS = ("components.data.synthetic.truth", "components.data.synthetic.checks", "components.evaluation.oracle")
BLIND = ("components.model", "components.training", "components.serving", "components.data.pipeline.stream")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_training_and_the_model_never_read_the_synthetic_truth(path):
    if not module_name(path).startswith(BLIND):
        return
    leaks = [f"line {line}: {target}" for line, target, _ in imports(path) if target.startswith(ANSWERS)]
    assert not leaks, f"{path.relative_to(REPO)} reads what only evaluation may:\n" + "\n".join(leaks)


def test_the_truth_rule_sees_a_leak(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from components.data.synthetic.truth import read_truth\n", "utf-8")
    assert [t for _, t, _ in imports(probe) if t.startswith(ANSWERS)] == ["components.data.synthetic.truth"]


def test_the_upward_check_sees_an_upward_import(tmp_path):
    """The walker itself: a lazy import of a higher floor inside a function is found and flagged."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from components.serving.registry import promote\n", "utf-8")
    assert list(imports(probe)) == [(2, "components.serving.registry", True)]
    assert floor("components.serving.registry") > floor("components.tracking.runs")


@pytest.mark.parametrize("path", sorted((REPO / "flows").glob("*.py")), ids=lambda p: p.name)
def test_flows_are_thin_checklists(path):
    text = path.read_text("utf-8")
    assert len(text.splitlines()) <= 90, f"{path.name}: move library code into components/"
    assert "def main(argv: list[str] | None = None) -> int:" in text and "sys.exit(run(main))" in text


HEAVY = ("torch", "ray", "mlflow")
PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as done:
    code = done.code
print("exit", code, "heavy", sorted(m for m in {heavy} if m in sys.modules))
"""


@pytest.mark.parametrize("path", sorted((REPO / "flows").glob("*.py")), ids=lambda p: p.name)
def test_help_and_config_errors_load_neither_torch_nor_ray_nor_mlflow(path, tmp_path):
    """What makes ``--help`` and a bad ``--set`` answer in well under a second: the heavy libraries
    load only after the arguments and the configuration are checked."""
    probe = PROBE.format(heavy=HEAVY)
    bad = ["--set", "train.lr=-1"] if "--set" in path.read_text("utf-8") else ["--no-such-option"]
    for argv, code in ((["--help"], 0), (bad, 2)):
        done = subprocess.run(
            [sys.executable, "-c", probe, str(path), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert done.stdout.strip().splitlines()[-1] == f"exit {code} heavy []", done.stdout[-500:] + done.stderr[-500:]
