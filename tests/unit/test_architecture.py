"""The shape of the code a reader relies on: imports run one way, and tasks plug in through
one registry dict that the job service reads."""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import app
from app.config import Settings
from app.errors import TaskNotAvailable
from app.jobs.runners import EventSink, ExitSink
from app.jobs.spec import WorkerSpec
from app.jobs.worker import execute
from app.service import Services
from app.store.versions import ModelStore
from app.training.errors import UnfitFile
from app.training.finetune import Hyperparameters
from app.training.task import TaskContext, TaskResult, UploadFacts
from app.training.tasks import TASKS
from tests.support.tiny_model import publish_tiny_classifier

APP = Path(app.__file__).parent

# A module past this many lines has usually grown a second concern: split it along its seams.
MAX_MODULE_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import of a module, wherever it stands: one inside a function (kept there so
    that torch loads late) or under ``if TYPE_CHECKING:`` is still a dependency a reader
    follows, and the finetune/loop cycle of old hid in a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def import_graph() -> dict[str, set[str]]:
    """Module -> the app modules it imports."""
    files = {_module_name(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # a relative import: resolve it against this package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import mod`` imports the module pkg.mod when there is one.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_the_imports_it_should() -> None:
    graph = import_graph()
    assert "app.jobs.service" in graph["app.service"]
    assert "app.training.tasks" in graph["app.jobs.intake"]  # from app.training.tasks import
    assert "app.training.classification.job" in graph["app.training.tasks"]
    assert "app.jobs.runners.ray_runner" in graph["app.jobs.service"]  # inside a function


def test_no_import_cycle_between_modules_of_app() -> None:
    assert cycles(import_graph()) == []


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_two_packages_of_app_import_each_other() -> None:
    edges = {
        (_package(a), _package(b))
        for a, targets in import_graph().items()
        for b in targets
        if _package(a) != _package(b)
    }
    pairs = {frozenset(e) for e in edges if (e[1], e[0]) in edges}
    assert pairs == set(), "packages that import each other"


def test_no_module_of_app_is_over_the_size_limit() -> None:
    sizes = {
        str(p.relative_to(APP.parent)): len(p.read_text().splitlines()) for p in APP.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_one_module_builds_onnx_runtime_sessions() -> None:
    """Provider options, threads and variants are decided in one place: app/runtime/backend.py."""
    builders = {
        str(p.relative_to(APP.parent))
        for p in APP.rglob("*.py")
        if "InferenceSession(" in p.read_text()
    }
    assert builders == {"app/runtime/backend.py"}


def test_jobs_never_import_a_task_module_but_the_registry() -> None:
    """app/jobs learns tasks from app.training.tasks alone, never from a task's folder."""
    graph = import_graph()
    task_folders = {
        m for m in graph if m.count(".") >= 3 and m.startswith("app.training.")
    }  # app.training.<task>.<module>
    for module, targets in graph.items():
        if module.startswith("app.jobs"):
            assert not targets & task_folders, module


def test_the_serving_process_imports_no_torch() -> None:
    """The serving image has no torch: importing the app and every task must not need it."""
    code = (
        "import sys, app.main, app.training.tasks\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


# -- the extension point: a task added to the registry dict runs as a job ------------------


@dataclass
class CopyTask:
    """A trivial task: publishes a tiny real classifier with the training file's labels."""

    refuse: str | None = None
    checked: list[str] = field(default_factory=list)
    ran: list[tuple[str, int]] = field(default_factory=list)

    def check_files(self, train: UploadFacts, validation: UploadFacts | None) -> None:
        self.checked.append(train.id)
        if self.refuse:
            raise UnfitFile(self.refuse, "training_file")

    def run(self, ctx: TaskContext) -> TaskResult:
        self.ran.append((ctx.spec.model, len(ctx.train)))
        ctx.stage("copying")
        labels = tuple(sorted({e.label for e in ctx.train}))
        manifest = publish_tiny_classifier(ctx.store, ctx.spec.model, labels, activate=False)
        return {
            "version": manifest.version,
            "metrics": {"rows": len(ctx.train)},
            "validation_rows": 0,
        }


class _Handle:
    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    @property
    def worker_id(self) -> str:
        return "thread"

    def cancel(self) -> None:
        self._stop.set()


class ThreadRunner:
    """Runs the worker's ``execute`` on a thread of this process, so a task that exists only
    in this test's registry dict is the one that runs (a worker process would not see it)."""

    name = "thread"

    def start(self, spec: WorkerSpec, on_event: EventSink, on_exit: ExitSink) -> _Handle:
        stop = threading.Event()

        def work() -> None:
            saved = tempfile.tempdir  # execute points it at the job's scratch folder
            try:
                code = execute(spec, on_event, stop.is_set)
            finally:
                tempfile.tempdir = saved
            on_exit(code, "")

        threading.Thread(target=work, daemon=True).start()
        return _Handle(stop)

    def shutdown(self) -> None:
        pass


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    store = ModelStore(tmp_path / "models")
    settings = Settings(
        model_store=store.root, data_dir=tmp_path / "var", ray_address=None, job_poll_s=0.05
    )
    built = Services.build(settings)
    built.jobs.runner = ThreadRunner()
    built.jobs.start()
    yield built
    built.stop()


def _wait(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


CSV = b"text,label\n" + b"".join(b"row %d,%s\n" % (i, b"ab"[i % 2 : i % 2 + 1]) for i in range(8))


def test_a_task_added_to_the_registry_dict_runs_as_a_job_end_to_end(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = CopyTask()
    monkeypatch.setitem(TASKS, "copy", task)
    jobs = services.jobs
    upload = jobs.files.add(CSV, filename="rows.csv")

    job = jobs.create(
        model="copied",
        task="copy",
        training_file=upload.id,
        validation_file=None,
        base_model="packaged",
        hyperparameters=Hyperparameters(),
        promote="always",
    )
    _wait(lambda: jobs.get(job.id).finished)

    done = jobs.get(job.id)
    assert (done.task, done.state, done.error) == ("copy", "succeeded", None)
    assert done.result is not None and done.result["version"] == 1
    assert done.result["promotion"]["promoted"] is True
    assert services.store.active_version("copied") == 1
    assert services.store.read_manifest("copied", 1).labels == ["a", "b"]
    # Checked at creation and again when its files were validated; run once, in the worker.
    assert task.checked == [upload.id, upload.id]
    assert task.ran == [("copied", 8)]
    stages = [e.message for e in jobs.events(job.id) if e.type == "stage"]
    assert "copying" in stages


def test_a_registered_task_decides_which_files_it_takes(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(TASKS, "picky", CopyTask(refuse="no rows of mine"))
    upload = services.jobs.files.add(CSV, filename="rows.csv")
    with pytest.raises(UnfitFile, match="no rows of mine"):
        services.jobs.create(
            model="picky",
            task="picky",
            training_file=upload.id,
            validation_file=None,
            base_model="packaged",
            hyperparameters=Hyperparameters(),
            promote="never",
        )
    assert services.jobs.list_jobs(10) == ([], False)


def test_a_task_missing_from_the_registry_is_refused_by_name(services: Services) -> None:
    upload = services.jobs.files.add(CSV, filename="rows.csv")
    with pytest.raises(TaskNotAvailable, match=r"'pairs' is not available.*tasks: classification"):
        services.jobs.create(
            model="later",
            task="pairs",
            training_file=upload.id,
            validation_file=None,
            base_model="packaged",
            hyperparameters=Hyperparameters(),
            promote="never",
        )
