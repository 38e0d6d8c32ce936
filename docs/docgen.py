"""Shared by the doc generators: write a generated document, or with --check report that it is stale."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(target: Path, text: str, generator: str) -> int:
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            print(f"docs/{target.name} is out of date: run python3 docs/{generator}")
            return 1
        return 0
    target.write_text(text)
    return 0
