"""Markdown tables for the benchmark scripts: BENCHMARKS.md takes their output as printed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[bool] | None = None) -> str:
    """A header, its separator (numeric columns right-aligned) and one line per row of already formatted cells."""
    numeric = numeric if numeric is not None else [False] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
