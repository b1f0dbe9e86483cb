"""What every benchmark script ends with: its result printed as JSON, and written to
``--json PATH`` when given."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, path: str | None) -> str:
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text
