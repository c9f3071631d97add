"""A minimal progress bar on standard error (no dependency)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Progress:
    """``label [#####-----] n/total`` redrawn in place; silent when ``enabled`` is False. Thread-safe."""

    def __init__(self, total: int, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._lock = threading.Lock()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done and redraw."""
        with self._lock:
            self.done += n
            if self.enabled:
                width = 30
                filled = int(width * self.done / self.total) if self.total else width
                bar = "#" * filled + "-" * (width - filled)
                total = self.total if self.total else "?"
                self.stream.write(f"\r{self.label} [{bar}] {self.done}/{total}")
                self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
