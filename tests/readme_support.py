"""The code blocks of the README's "Testing handlers" section, to run them as tests."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_code_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Testing handlers", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)
