"""Builds that must fail (BuildKit fails too; ocibuild's message checked)."""

from conformance.case import Case, Expect

B = "FROM {busybox}\n"
CHMOD_CHECKED = (
    "v0.11.6 ignores an invalid --chmod; current BuildKit rejects it (6fddb5dc8, "
    '"Check the validity of the chmod option arguments for COPY and ADD")'
)
CASES = [
    Case("error_unknown_instruction", B + "FOO bar\n", error="unknown instruction: FOO"),
    Case("error_missing_source", B + "COPY nothere /x\n", error="nothere"),
    Case("error_run_fails", B + "RUN exit 3\n", error="exit code: 3"),
    Case(
        "error_copy_from_unknown_stage",
        B + "COPY --from=nosuchstage /x /x\n",
        error="nosuchstage",
        expect=Expect(),
        reason="BuildKit takes an unknown --from name for an image on Docker Hub: no network "
        "here (v0.11.6 cannot build it offline)",
    ),
    Case(
        "chown_unknown_user_is_root",
        B + "COPY --chown=nobodyhere a /a\n",
        files={"a": "a"},
    ),
    Case(
        "chown_unknown_user_known_group",
        B + "COPY --chown=ghost:extra a /a\nCOPY --chown=app:ghosts a /b\n",
        files={"a": "a"},
    ),
    Case("workdir_unknown_user_is_root", B + "USER ghost\nWORKDIR /wd/sub\n"),
    Case("error_unterminated_quote", B + 'ENV A="open\n', error="matching double-quote"),
    Case(
        "error_bad_json_exec",
        B + 'CMD ["a", 1]\nRUN ["true", 2]\n',
        error="arrays must be comprised of strings only",
    ),
    Case(
        "error_stopsignal_invalid",
        B + "STOPSIGNAL SIGNOPE\n",
        error="SIGNOPE",
    ),
    Case(
        "error_chmod_invalid",
        B + "COPY --chmod=999 a /a\n",
        files={"a": "a"},
        error="999",
        expect=Expect(),
        reason=CHMOD_CHECKED,
    ),
    Case(
        "error_unterminated_heredoc",
        B + "RUN <<EOF\necho never ends\n",
        error="unterminated heredoc",
    ),
]
