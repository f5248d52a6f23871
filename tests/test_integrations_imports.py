"""The integrations are optional: importing turnstate (and its integrations package) loads no framework."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("agents", "langchain_core", "llama_index")


def test_importing_turnstate_loads_no_framework() -> None:
    code = (
        "import sys, turnstate, turnstate.integrations; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
