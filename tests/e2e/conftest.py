"""Makes the shared stack harness (`e2e_stack`) importable for tests/e2e and tests/faults."""

import sys
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
