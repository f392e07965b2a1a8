"""What a build tells about itself, in one package.

* :mod:`~ocibuild.observe.log`: reporters (the terminal's step lines, ``--quiet``,
  ``--progress=json``) and ``human_size``; the lowest layer, every other one may use it.
* :mod:`~ocibuild.observe.trace`: ``--trace FILE`` (JSON lines) and the per-step time
  split (:class:`~ocibuild.observe.trace.StepTimings`).
* :mod:`~ocibuild.observe.forensics`: ``--keep-bundles`` and ``--keep-failed``, what a RUN
  step leaves for study.
* :mod:`~ocibuild.observe.explain`: why each step hit or missed the cache
  (``ocibuild explain``).
* :mod:`~ocibuild.observe.report`: ``--report FILE``, the build's summary;
  :mod:`~ocibuild.observe.html` draws it as one page (``--report-html``, ``report --html``).
* :mod:`~ocibuild.observe.records`: the build records under ``ROOT/builds/``
  (``ocibuild logs``), the observer the executor calls at each step.
* :mod:`~ocibuild.observe.debug`: ``ocibuild debug BUILD``, a shell in a kept failure.

The modules sit at different layers (pyproject.toml's import-linter contract): ``log``,
``trace`` and ``forensics`` below the builder, ``explain``, ``report``, ``html`` and
``records`` above it, ``debug`` beside the API. This file imports none of them.
"""
