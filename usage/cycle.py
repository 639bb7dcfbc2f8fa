"""What a cycle close reports, shared by its stages: its summary, its error, its progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Progress = Callable[[str, int], None]  # (stage, count so far)


def no_progress(stage: str, count: int) -> None:
    return None


class CloseError(Exception):
    """The close cannot run as asked (period not over, no complete pull, ...)."""


@dataclass
class CloseSummary:
    period: str
    dry_run: bool
    rows: int = 0
    orphans: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    frozen: int = 0
    removed: int = 0
    issued: int = 0
    held: int = 0  # drafts kept for review: SolusIO disagreed, or usage it cannot price
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
