"""Observing builds: records, reports and their pictures (:mod:`ocibuild.observe.html`)."""
