"""Progress for long CLI jobs: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


@contextmanager
def loading(console: Console, what: str) -> Iterator[None]:
    """A spinner while a model loads (seconds, with nothing else to show); nothing when
    the console is not a terminal, so logs and ``--json`` runs stay as they were."""
    if not console.is_terminal:
        yield
        return
    with console.status(f"{what}...", spinner="dots"):
        yield


def _eta(seconds: float) -> str:
    if seconds <= 0 or seconds != seconds:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConsoleProgress:
    """Implements latestore.ingest.IngestProgress (and plain page counting for evaluate).

    Writes to ``console`` (stderr in the CLI, so ``--json`` output on stdout stays clean).
    On a terminal it draws files, pages, pages/s and ETA; elsewhere (CI logs, nohup,
    pipes) it prints one line every ``log_every`` seconds and a last one at the end.
    """

    def __init__(self, console: Console, label: str = "ingest", log_every: float = 10.0) -> None:
        self.console = console
        self.label = label
        self.log_every = log_every
        self.files_total = 0
        self.files_done = 0
        self.pages_total = 0
        self.pages_done = 0
        self._started = time.perf_counter()
        self._last_log = self._started
        self._last_line = ""
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- IngestProgress ----------------------------------------------------------
    def start(self, files: int, pages: int, *, started: float | None = None) -> None:
        """Totals known: draw the bar. ``files`` 0 leaves files out (a job over pages,
        such as a re-encode); ``started`` (a ``time.perf_counter()`` value) is when the
        job began, for a job that learns its totals after its first work is done."""
        self.files_total, self.pages_total = files, pages
        self._started = self._last_log = started if started is not None else time.perf_counter()
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("pages"),
                TextColumn("{task.fields[files]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                self.label, total=max(pages, 1), files=self._files(), rate=""
            )
        else:
            what = f"{files:,} files, about {pages:,} pages" if files else f"{pages:,} pages"
            self.console.print(f"{self.label}: {what}", highlight=False)

    def advance(self, pages: int) -> None:
        self.pages_done += pages
        # Estimates (text chunks, unreadable files) can undercount the total.
        self.pages_total = max(self.pages_total, self.pages_done)
        self._refresh()

    def file_done(self, path: Path, status: str) -> None:
        self.files_done += 1
        if status == "failed" and self._bar is None:
            self.console.print(f"{self.label}: failed {path}", highlight=False)
        self._refresh()

    # -- drawing -----------------------------------------------------------------
    def _files(self) -> str:
        if not self.files_total:
            return ""
        return f"{self.files_done:,}/{self.files_total:,} files"

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self._started
        return self.pages_done / elapsed if elapsed > 0 else 0.0

    def _refresh(self, force: bool = False) -> None:
        rate = self._rate()
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=self.pages_done,
                total=max(self.pages_total, 1),
                files=self._files(),
                rate=f"{rate:.1f} pages/s",
            )
            return
        now = time.perf_counter()
        if force or now - self._last_log >= self.log_every:
            self._last_log = now
            left = (self.pages_total - self.pages_done) / rate if rate > 0 else float("nan")
            files = self._files()
            counts = f"{self.pages_done:,}/{self.pages_total:,} pages" + (
                f", {files}" if files else ""
            )
            if force and counts in self._last_line:
                return  # the closing line would repeat the last one
            self._last_line = f"{self.label}: {counts}, {rate:.1f} pages/s, ETA {_eta(left)}"
            self.console.print(self._last_line, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.files_total or self.pages_total:
            self._refresh(force=True)
