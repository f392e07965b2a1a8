"""Cases where ocibuild is known to differ from BuildKit, while the bug is open.

Case name -> the bug number in the issue "Graded by a real BuildKit" ("new: ..." for a
difference this suite found that the issue does not list yet). A listed case that differs
does not fail ``make conformance`` or the pytest wrapper; a listed case that matches is
reported as FIXED: delete its line. Never add a line to hide a new difference without an
issue for it.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
    # 1 a symlink source keeps its own name (content followed)
    "bug01_copy_symlink_source_keeps_name": "1",
    "bug01_copy_from_symlink_keeps_name": "1",
    "bug01_copy_from_symlink_into_bin": "1",
    "bug01_add_symlink_source": "1",
    "copy_follow_all_symlinks": "1",
    # 2 --chown=NAME: the user's primary gid from /etc/passwd
    "bug02_chown_name_primary_gid": "2",
    "bug02_chown_name_dir": "2",
    # 3 the primary gid among the RUN process's supplementary groups
    "bug03_run_groups_include_primary": "3",
    "bug03_run_groups_uid_gid": "3",
    "bug03_run_groups_root": "3",
    "run_user_groups": "3",
    "run_proc_self_groups": "3",
    "user_numeric_unknown": "3",
    "user_with_group_name": "3",
    # 4 an unmatched wildcard copies nothing
    "bug04_wildcard_unmatched_and_matched": "4",
    "bug04_wildcard_all_unmatched": "4",
    "bug04_wildcard_unmatched_scratch": "4",
    # 5 a stage FROM another stage inherits its ARGs
    "bug05_stage_inherits_args": "5",
    "bug05_stage_inherits_args_build_arg": "5",
    # 6 COPY onto a destination symlink writes through it
    "bug06_copy_onto_symlink_file": "6",
    "bug06_copy_onto_symlink_dangling": "6",
    "bug06_copy_onto_symlink_climbing": "6",
    # 7 a destination dir COPY creates is 0755 root:root
    "bug07_copy_dir_new_dest_mode": "7",
    "bug07_copy_dir_new_dest_no_slash": "7",
    "bug07_copy_from_dir_new_dest": "7",
    "copy_dir_mode_to_new_dest": "7",
    "copy_from_keeps_owner": "7",
    "copy_chown_existing_dir": "7",
    "copy_chmod_variants": "7",
    # 8 FROM scratch: WorkingDir "/" (and RUN leaves /dev, /proc, /sys dirs)
    "bug08_scratch_workdir": "8",
    "bug08_scratch_env_only": "8",
    "run_leaves_no_mount_points": "8",
    "copy_hardlinks_twice": "8",
    "copy_dockerfile_itself": "8",
    "default_shell_and_path_scratch": "8",
    "stage_from_scratch_copy_from": "8",
    "heredoc_copy_special_symbols": "8",
    # 9 .dockerignore re-inclusion below an excluded dir
    "bug09_dockerignore_reinclude_nested": "9",
    # 10 COPY --from=$NAME: BuildKit's error
    "bug10_copy_from_variable_error": "10",
    "bug10_copy_from_variable_global_error": "10",
    "copy_from_stage_scoped_arg": "10",
    # 11 WORKDIR kept as written
    "bug11_workdir_trailing_slash": "11",
    "bug11_workdir_trailing_slash_new": "11",
    "bug11_workdir_dot_segments": "11",
    # 14 two stages with the same name
    "bug14_duplicate_stage_names": "14",
    "bug14_duplicate_stage_names_copy_from": "14",
    # 15 COPY of several sources to a destination without a trailing slash
    "bug15_copy_glob_no_trailing_slash": "15",
    "bug15_copy_glob_no_slash_scratch": "15",
    "bug15_copy_two_files_no_slash": "15",
    # 16 cache mounts differing in uid/gid are different caches
    "bug16_cache_mount_uid_distinct": "16",
    # 17 escaped glob characters in a source
    "bug17_escaped_glob_chars": "17",
    # 18 bare RUN, --chown=:
    "bug18_bare_run": "18",
    "bug18_chown_colon_only": "18",
    # 19 COPY <<EOF rebuilt: cache hit, same image ID
    "bug19_heredoc_copy_rebuild_cached": "19",
    # 21 hardlink partners and layer contents
    "bug21_hardlink_add_partner": "21",
    # found by this suite
    "chown_unknown_user_is_root": "new: an unknown --chown user is uid 0 in BuildKit, not an error",
    "copy_chown_unknown_group": "new: an unknown --chown group is gid 0 in BuildKit",
    "copy_chown_variants": "new: an unknown --chown group is gid 0 in BuildKit",
    "arg_multi_args": "new: ARG a=1 b=${a}: b does not see a (same instruction)",
    "copy_link_chown_name": "new: BuildKit fails COPY --link --chown=NAME (invalid user index)",
    "from_platform_other_single_arch": "new: FROM --platform=X of a single-arch image builds",
    "copy_workdir_dangling_symlink": "new: WORKDIR through a dangling symlink creates its target",
    "copy_file_onto_dir_error": "new: COPY of a file onto an existing dir must fail",
    "copy_dir_onto_file": "new: COPY of a dir onto an existing file must fail",
    "mount_tmpfs_size": "new: a tmpfs mount on /dev/shm stacks on the runtime's /dev/shm",
    "onbuild_copy_from_stage": "new: ONBUILD COPY --from=STAGE of the child Dockerfile",
}
