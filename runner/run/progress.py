"""Live progress per (model, framework): images done, images/s and ETA.

On a terminal it is a rich progress display; in logs (CI, Kubernetes) a line per shard.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:7.1f} img/s" if task.speed else "      - img/s")


class RunProgress:
    def __init__(self, console: Console, totals: dict[str, int]):
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[state]}"),
            console=console,
            disable=not self.live,
        )
        self.tasks = {
            key: self.progress.add_task(key, total=total, start=False, state="waiting")
            for key, total in totals.items()
        }

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def started(self, key: str) -> None:
        self.progress.start_task(self.tasks[key])
        self.progress.update(self.tasks[key], state="running")

    def advance(self, key: str, images: int) -> None:
        task_id = self.tasks[key]
        self.progress.advance(task_id, images)
        if not self.live:
            task = self.progress.tasks[task_id]
            rate = f"{task.speed:.1f} img/s" if task.speed else "-"
            eta = f"{task.time_remaining:.0f}s" if task.time_remaining is not None else "-"
            self.console.print(f"{key}: {task.completed}/{task.total} images, {rate}, ETA {eta}")

    def finished(self, key: str, state: str) -> None:
        self.progress.update(self.tasks[key], state=state)
        if not self.live:
            self.console.print(f"{key}: {state}")
