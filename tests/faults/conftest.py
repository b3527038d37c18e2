"""The fault suite reuses the end-to-end stack harness in tests/e2e (`e2e_stack`)."""

import sys
from pathlib import Path

_e2e = str(Path(__file__).resolve().parent.parent / "e2e")
if _e2e not in sys.path:
    sys.path.insert(0, _e2e)
