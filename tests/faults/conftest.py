"""The fault suite reuses the end-to-end stack harness in tests/e2e (`e2e_stack`) and its own helpers here."""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
for _path in (str(_here), str(_here.parent / "e2e")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
