"""Progress for long work: a bar on a terminal, nothing when output is piped or captured."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")


def steps(items: Sequence[T], description: str) -> Iterator[T]:
    """Yield `items`, showing a transient progress bar on stderr when it is a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal or len(items) < 2:
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(description, total=len(items))
        for item in items:
            yield item
            progress.advance(task)
