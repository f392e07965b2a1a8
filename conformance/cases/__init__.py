"""Every conformance case, gathered from the topic modules."""

from __future__ import annotations

from conformance.case import Case


def all_cases() -> list[Case]:
    from conformance.cases import (
        args,
        bk_copy,
        bk_misc,
        bugs,
        copy,
        errors,
        heredocs,
        metadata,
        mounts,
        platforms,
        realistic,
        run,
        stages,
    )

    cases: list[Case] = []
    modules = (metadata, args, run, copy, heredocs, mounts, stages, realistic, errors, bugs,
               bk_copy, bk_misc, platforms)  # fmt: skip
    for module in modules:
        cases.extend(module.CASES)
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate case names: {sorted(dupes)}")
    return cases
