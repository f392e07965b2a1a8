"""Cases where ocibuild is known to differ from BuildKit, while the bug is open.

Case name -> the bug number in the issue "Graded by a real BuildKit" ("new: ..." for a
difference this suite found that the issue does not list yet). A listed case that differs
does not fail ``make conformance`` or the pytest wrapper; a listed case that matches is
reported as FIXED: delete its line. Never add a line to hide a new difference without an
issue for it.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
    # 7 a destination dir COPY creates is 0755 root:root
    "copy_chmod_variants": "7",
    # 8 FROM scratch: WorkingDir "/" (and RUN leaves /dev, /proc, /sys dirs)
    "run_leaves_no_mount_points": "8",
    # found by this suite
    "chown_unknown_user_is_root": "new: an unknown --chown user is uid 0 in BuildKit, not an error",
    "copy_chown_unknown_group": "new: an unknown --chown group is gid 0 in BuildKit",
    "copy_chown_variants": "new: an unknown --chown group is gid 0 in BuildKit",
    "copy_link_chown_name": "new: BuildKit fails COPY --link --chown=NAME (invalid user index)",
    "copy_file_onto_dir_error": "new: COPY of a file onto an existing dir must fail",
    "copy_dir_onto_file": "new: COPY of a dir onto an existing file must fail",
    "onbuild_copy_from_stage": "new: ONBUILD COPY --from=STAGE of the child Dockerfile",
    # current BuildKit (fsutil 13604323, BuildKit test 75c457afd) gives an octal --chmod
    # to the directories a COPY creates; v0.11.6 leaves them 0755, and ocibuild does too
    "copy_chmod_octal_dir": "new: --chmod on created directories (current BuildKit)",
    "copy_chmod_symbolic": "new: --chmod on created directories (current BuildKit)",
}
