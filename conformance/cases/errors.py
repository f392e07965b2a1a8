"""Builds that must fail (ocibuild's message checked; buildah must fail too)."""

from conformance.case import Case

B = "FROM {busybox}\n"
CASES = [
    Case("error_unknown_instruction", B + "FOO bar\n", error="unknown instruction: FOO"),
    Case("error_missing_source", B + "COPY nothere /x\n", error="nothere"),
    Case("error_run_fails", B + "RUN exit 3\n", error="exit code: 3"),
    Case(
        "error_copy_from_unknown_stage", B + "COPY --from=nosuchstage /x /x\n", error="nosuchstage"
    ),
    Case(
        "error_chown_unknown_user",
        B + "COPY --chown=nobodyhere a /a\n",
        files={"a": "a"},
        error="nobodyhere",
    ),
    Case("error_unterminated_quote", B + 'ENV A="open\n', error="matching double-quote"),
    Case(
        "error_bad_json_exec",
        B + 'CMD ["a", 1]\nRUN ["true", 2]\n',
        error="arrays must be comprised of strings only",
        reason="buildah 1.28 runs a JSON array with non-strings as a shell command",
    ),
    Case(
        "error_stopsignal_invalid",
        B + "STOPSIGNAL SIGNOPE\n",
        error="SIGNOPE",
        reason="buildah 1.28 accepts any STOPSIGNAL text; BuildKit validates it",
    ),
    Case(
        "error_chmod_invalid",
        B + "COPY --chmod=999 a /a\n",
        files={"a": "a"},
        error="999",
        reason="buildah 1.28 error wording aside, it also fails; checked on ocibuild only",
    ),
    Case(
        "error_unterminated_heredoc",
        B + "RUN <<EOF\necho never ends\n",
        error="unterminated heredoc",
        reason="buildah 1.28 has no heredocs",
    ),
]
