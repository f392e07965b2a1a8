"""Here-documents in RUN, COPY and ADD."""

from conformance.case import HEREDOC_0644, Case, heredoc_files

B = "FROM {busybox}\n"
WHY = "buildah 1.28 has no heredocs"
CASES = [
    Case(
        "heredoc_run_body",
        B + "RUN <<EOF\necho one > /one\necho two > /two\nEOF\n",
    ),
    Case(
        "heredoc_run_shebang",
        B + 'RUN <<EOF\n#!/bin/sh\necho "$0" > /name\nEOF\n',
    ),
    Case(
        "heredoc_run_with_shell",
        B + "RUN <<EOF sh\necho via-sh > /sh\nEOF\n",
    ),
    Case(
        "heredoc_run_several",
        B + "RUN cat <<A > /a && cat <<B > /b\nfirst\nA\nsecond\nB\n",
    ),
    Case(
        "heredoc_run_chomp",
        B + "RUN <<-EOT\n\techo tabbed > /t\n\tEOT\n",
    ),
    Case(
        "heredoc_run_shell_expands",
        B + 'ENV V=val\nRUN <<EOF\necho "$V" > /v\nEOF\n',
    ),
    Case(
        "heredoc_copy_expand",
        B + "ARG NAME=world\nCOPY <<EOF /greeting\nhello $NAME 'q' \"d\"\nEOF\n"
        "COPY <<'EOF' /literal\nhello $NAME\nEOF\n",
        newer=heredoc_files("/greeting", "/literal"),
        reason=HEREDOC_0644,
    ),
    Case(
        "heredoc_copy_several_to_dir",
        B + "COPY --chmod=0755 <<one.sh <<two.sh /scripts/\necho 1\none.sh\necho 2\ntwo.sh\n",
    ),
    Case(
        "heredoc_add_chown",
        B + "ADD --chown=app <<-EOF /home/app/conf\n\tkey=value\n\tEOF\n",
        newer=heredoc_files("/home/app/conf"),
        reason=HEREDOC_0644,
    ),
    Case(
        "onbuild_triggers_run",
        B.replace("\n", " AS parent\n") + "ONBUILD RUN echo triggered > /triggered\n"
        "ONBUILD COPY a.txt /from-trigger\nRUN echo parent > /parent\n"
        "FROM parent\nRUN cat /triggered > /seen\n",
        files={"a.txt": "A\n"},
    ),
    Case(
        "onbuild_config",
        B + "ONBUILD RUN echo hi\nONBUILD ENV A=1\n",
    ),
]
