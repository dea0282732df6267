"""A rich progress display for bootstrap: one bar per model, with loss and throughput."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from app.store.manifest import Manifest
from app.training.finetune import TrainProgress


class RichProgress:
    """A ``ProgressReporter`` that draws on the terminal; use it as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stage]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} samples/s"),
            TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            console=self.console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def model_started(self, name: str, *, train_rows: int, eval_rows: int) -> None:
        self.console.print(f"{name}: {train_rows} training rows, {eval_rows} held out")
        self._tasks[name] = self._progress.add_task(
            name, total=None, stage="loading", loss="-", rate="-", eta="-"
        )

    def model_stage(self, name: str, stage: str) -> None:
        if name in self._tasks:
            self._progress.update(self._tasks[name], stage=stage)

    def model_progress(self, name: str, progress: TrainProgress) -> None:
        if name in self._tasks:
            self._progress.update(
                self._tasks[name],
                total=progress.total_steps,
                completed=progress.step,
                stage=f"epoch {progress.epoch}",
                loss=f"{progress.loss:.3f}",
                rate=f"{progress.samples_per_second:.0f}",
                eta=f"{progress.eta_seconds:.0f}s",
            )

    def model_finished(self, name: str, manifest: Manifest) -> None:
        if name in self._tasks:
            self._progress.update(
                self._tasks[name], stage=f"published v{manifest.version}", eta="-"
            )
        scores = manifest.metrics.get("eval") or {}
        if scores:
            self.console.print(
                f"{name}: v{manifest.version} active, eval accuracy {scores['accuracy']:.3f}, "
                f"macro F1 {scores['macro_f1']:.3f} on {scores['n']} rows"
            )
        else:
            self.console.print(f"{name}: v{manifest.version} active (no eval rows)")

    def model_skipped(self, name: str, reason: str) -> None:
        self.console.print(f"[dim]{name}: skipped, {reason}[/dim]")
