"""The README's integration-test example, run as it is written, on the session broker."""

from __future__ import annotations

from typing import Any

import pytest
from readme_support import readme_code_blocks

pytestmark = pytest.mark.integration

# ORDER comes from the unit example block; its tests stay in tests/unit.
_unit: dict[str, Any] = {}
exec(compile(readme_code_blocks()[0], "README.md (TestBroker example)", "exec"), _unit)
ORDER = _unit["ORDER"]
exec(compile(readme_code_blocks()[1], "README.md (integration example)", "exec"), globals())
