"""The ``textserve`` command line: ``serve`` the models, ``bootstrap`` the default ones,
``replay`` recorded texts through a running server (app/replay.py).

Heavy imports (uvicorn and the app for ``serve``, torch via the training package for
``bootstrap``) happen inside the commands, so ``textserve serve`` never loads torch.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from app.config import Settings, settings_problems
from app.errors import TextserveError

cli = typer.Typer(
    help="Serve text models on ONNX Runtime, and build them.",
    no_args_is_help=True,
    add_completion=False,
)


def _load_settings(**overrides: Any) -> Settings:
    """The settings, or exit 2 with one line per bad one, naming its variable."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        for line in settings_problems(exc):
            typer.echo(f"textserve: invalid setting: {line}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (env TEXTSERVE_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port to bind (env TEXTSERVE_PORT).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Server processes (env TEXTSERVE_WORKERS)."),
    ] = None,
) -> None:
    """Serve every model with an active version over HTTP."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from app.api.connection import http_protocol
    from app.main import create_app

    overrides: dict[str, Any] = {
        key: value
        for key, value in (("host", host), ("port", port), ("workers", workers))
        if value is not None
    }
    settings = _load_settings(**overrides)
    workers = settings.workers
    grace = math.ceil(settings.drain_timeout_s)
    # Uvicorn drains, then re-raises SIGTERM with the handler it found: a drained stop exits 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers == 1:
        try:
            app = create_app(settings)
        except (OSError, TextserveError, SQLAlchemyError) as exc:
            # A data folder that cannot be made, a jobs database that cannot be reached, keys
            # required and missing: one line that says which, not a traceback.
            where = "TEXTSERVE_JOBS_DB_URL: " if isinstance(exc, SQLAlchemyError) else ""
            typer.echo(f"textserve: cannot start: {where}{exc}", err=True)
            raise typer.Exit(1) from None
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=grace,
            http=http_protocol(settings),
        )
        return
    # Worker processes build their own app, so the overrides must reach them via the env.
    os.environ.update({f"TEXTSERVE_{key.upper()}": str(value) for key, value in overrides.items()})
    # Each worker sizes its ORT threads from the number of workers sharing the cores.
    os.environ["TEXTSERVE_WORKERS"] = str(workers)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=grace,
        http=http_protocol(settings),
    )


@cli.command()
def bootstrap(
    on_request: Annotated[
        str | None,
        typer.Argument(
            metavar="[news-topic]",
            help="Build a model that is built only on request: news-topic (from AG News).",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="news-topic: AG News folder or CSV (default ../shared/data/ag_news)."),
    ] = None,
    per_label: Annotated[
        int, typer.Option(min=2, help="news-topic: training texts per topic.")
    ] = 2000,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild models that already have an active version.")
    ] = False,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Build only this model; repeatable.")
    ] = None,
    recipes: Annotated[
        Path | None, typer.Option(help="Recipes folder (default: <model store>/_recipes).")
    ] = None,
) -> None:
    """Build the default models from their recipes, where no version is active yet; or,
    named, a model built only on request (news-topic)."""
    from rich.logging import RichHandler

    from app.store.versions import ModelStore
    from app.training.bootstrap import run_bootstrap
    from app.training.progress import RichProgress

    settings = _load_settings()
    console = Console(stderr=True)
    # The progress display says what happens; the logs only need to say what went wrong.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    store = ModelStore(settings.model_store)
    started = time.perf_counter()
    recipes = recipes or settings.model_store / "_recipes"
    try:
        if on_request is not None:
            recipes, model = _on_request_recipe(on_request, recipes, data, per_label), None
        with RichProgress(console) as progress:
            manifests = run_bootstrap(store, recipes, force=force, names=model, progress=progress)
    except TextserveError as exc:
        console.print(f"[red]bootstrap failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    elapsed = time.perf_counter() - started
    built = ", ".join(f"{m.name}@{m.version}" for m in manifests) or "nothing to build"
    console.print(f"bootstrap: {built} ({elapsed:.0f} s)")


def _on_request_recipe(name: str, recipes: Path, data: Path | None, per_label: int) -> Path:
    """A recipes folder holding only the on-request recipe ``name``, its data prepared."""
    import tempfile

    from app.training import news_topic

    if name != news_topic.NAME:
        raise typer.BadParameter(f"no on-request recipe {name!r}; there is: news-topic")
    work = Path(tempfile.mkdtemp(prefix="textserve-news-topic-"))
    folder = recipes / "on_request" / news_topic.NAME
    return news_topic.prepare(folder, data or news_topic.DEFAULT_AG_NEWS, work, per_label)


@cli.command()
def finetune(
    data: Annotated[Path, typer.Option(help="Training data: CSV, TSV or JSON lines.")],
    model: Annotated[str, typer.Option(help="Model name to publish under.")],
    text_column: Annotated[
        str | None, typer.Option(help="Text column: name or 1-based position (inferred if unset).")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Label column: name or 1-based position (inferred if unset).")
    ] = None,
    validation: Annotated[
        Path | None, typer.Option(help="Validation data (default: 10 % held out, stratified).")
    ] = None,
    base_model: Annotated[
        str, typer.Option(help="'packaged', a local folder or a hub id.")
    ] = "packaged",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    max_length: Annotated[int, typer.Option(min=8, max=512)] = 128,
    seed: Annotated[int, typer.Option(min=0)] = 13,
    promote: Annotated[
        str, typer.Option(help="never | if_better | always (compared on the validation rows).")
    ] = "if_better",
) -> None:
    """Fine-tune a classifier on a local file, publish it, and promote it by the rule."""
    from app.jobs.inline import read_dataset, run_inline
    from app.jobs.spec import WorkerEvent
    from app.store.versions import ModelStore
    from app.training.finetune import Hyperparameters, TrainProgress
    from app.training.progress import RichProgress

    console = Console(stderr=True)
    if promote not in ("never", "if_better", "always"):
        raise typer.BadParameter("use never, if_better or always", param_hint="--promote")
    settings = _load_settings()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        hp = Hyperparameters(
            epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
            max_length=max_length, seed=seed,
        )  # fmt: skip
        train = read_dataset(data, text_column, label_column)
        console.print(
            f"{data.name}: {len(train.examples)} rows, text {train.text_column!r}, "
            f"label {train.label_column!r}, {len(train.label_counts)} labels"
        )
        for problem in train.problems:
            console.print(f"[yellow]{problem.kind}[/yellow]: {problem.message}")
        valid = None
        if validation is not None:
            valid = read_dataset(validation, text_column, label_column)
        started = time.perf_counter()
        with RichProgress(console) as progress:
            progress.model_started(
                model, train_rows=len(train.examples), eval_rows=len(valid.examples) if valid else 0
            )

            def emit(event: WorkerEvent) -> None:
                if event.type == "stage":
                    progress.model_stage(model, event.message)
                elif event.type == "progress":
                    progress.model_progress(model, TrainProgress(**event.data))

            outcome = run_inline(
                ModelStore(settings.model_store),
                model=model,
                train=train,
                validation=valid,
                base_model=base_model,
                hp=hp,
                promote=promote,  # type: ignore[arg-type]
                emit=emit,
            )
            progress.model_stage(model, f"published v{outcome.version}")
    except (TextserveError, ValueError) as exc:
        console.print(f"[red]finetune failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    scores = outcome.result["metrics"].get("eval") or {}
    accuracy = f", validation accuracy {scores['accuracy']:.3f}" if scores else ""
    verdict = "promoted" if outcome.decision.promote else "not promoted"
    console.print(
        f"{model}@{outcome.version} published{accuracy}; {verdict}: {outcome.decision.reason} "
        f"({time.perf_counter() - started:.0f} s)"
    )


@cli.command()
def replay(
    file: Annotated[Path, typer.Argument(help="CSV or JSON lines: text, optional timestamp.")],
    stream: Annotated[str, typer.Option(help="Stream the texts are counted under.")],
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Texts per second (ignores timestamps).")
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0.001, help="Timestamps replayed this many times faster.")
    ] = 1.0,
    url: Annotated[
        str, typer.Option(envvar="TEXTSERVE_URL", help="The server.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option(envvar="TEXTSERVE_API_KEY", help="A key with the infer scope.")
    ] = None,
) -> None:
    """Send recorded texts through /classify with topic and sentiment, in order, with progress."""
    from rich.progress import Progress

    from app import replay as rp

    console = Console(stderr=True)
    try:
        rows = rp.read_rows(file)
        client = rp.Client(url, api_key)
    except rp.ReplayError as exc:
        console.print(f"[red]replay failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    with Progress(console=console) as progress:
        task = progress.add_task(f"{file.name} -> {stream}", total=len(rows))
        outcome = rp.replay(
            rows,
            lambda text: client.classify(text, stream),
            rate=rate,
            speed=speed,
            on_sent=lambda n: progress.update(task, completed=n),
        )
    client.close()
    negative = sum(n for (_, sentiment), n in outcome.opinions.items() if sentiment == "negative")
    codes = ", ".join(f"{code or 'no answer'}: {n}" for code, n in sorted(outcome.statuses.items()))
    console.print(f"replay: {outcome.sent} classified ({negative} negative), {codes}")
    if outcome.failed:
        raise typer.Exit(1)


db_cli = typer.Typer(help="The jobs database (TEXTSERVE_JOBS_DB_URL, else SQLite in the data dir).")
cli.add_typer(db_cli, name="db")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the jobs database to the newest schema (replicas also do this at start)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from app.jobs.migrate import current, head, upgrade
    from app.jobs.store import default_url

    settings = _load_settings()
    if not settings.jobs_db_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.jobs_db_url or default_url(settings.data_dir))
    try:
        before = current(engine)
        upgrade(engine)
        typer.echo(f"jobs database: {before or 'empty'} -> {head()}")
    except SQLAlchemyError as exc:
        typer.echo(f"textserve: cannot migrate: TEXTSERVE_JOBS_DB_URL: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    """Entry point of the ``textserve`` script."""
    cli()
