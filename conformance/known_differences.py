"""Cases where ocibuild is known to differ from BuildKit, while the bug is open.

Case name -> the bug number in the issue "Graded by a real BuildKit" (or a short
reference). A listed case that differs does not fail ``make conformance`` or the pytest
wrapper; a listed case that matches is reported as FIXED (remove it here). Fixing a bug
means deleting its lines, never adding a case to hide a new difference.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {}
