"""Cases where ocibuild is known to differ from BuildKit, while the bug is open.

Case name -> the bug number in the issue "Graded by a real BuildKit" ("new: ..." for a
difference this suite found that the issue does not list yet). A listed case that differs
does not fail ``make conformance`` or the pytest wrapper; a listed case that matches is
reported as FIXED: delete its line. Never add a line to hide a new difference without an
issue for it.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {}
