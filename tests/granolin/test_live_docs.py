"""The complete test shown in docs/granolin.md, run as it is written there."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "granolin.md"


async def test_the_documented_test_passes() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    (source,) = [block for block in blocks if "async def test_the_bot_adds" in block]
    namespace: dict = {}
    exec(compile(source, str(DOC), "exec"), namespace)
    await namespace["test_the_bot_adds"]()
