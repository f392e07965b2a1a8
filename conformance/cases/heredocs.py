"""Here-documents in RUN, COPY and ADD (buildah 1.28 has none: written expectations)."""

from conformance.case import Case, Expect, d, f

B = "FROM {busybox}\n"
WHY = "buildah 1.28 has no heredocs"
CASES = [
    Case(
        "heredoc_run_body",
        B + "RUN <<EOF\necho one > /one\necho two > /two\nEOF\n",
        expect=Expect(files={"/one": f("one\n"), "/two": f("two\n")}),
        reason=WHY,
    ),
    Case(
        "heredoc_run_shebang",
        B + 'RUN <<EOF\n#!/bin/sh\necho "$0" > /name\nEOF\n',
        expect=Expect(files={"/name": f("/dev/pipes/EOF\n")}),
        reason=WHY,
    ),
    Case(
        "heredoc_run_with_shell",
        B + "RUN <<EOF sh\necho via-sh > /sh\nEOF\n",
        expect=Expect(files={"/sh": f("via-sh\n")}),
        reason=WHY,
    ),
    Case(
        "heredoc_run_several",
        B + "RUN cat <<A > /a && cat <<B > /b\nfirst\nA\nsecond\nB\n",
        expect=Expect(files={"/a": f("first\n"), "/b": f("second\n")}),
        reason=WHY,
    ),
    Case(
        "heredoc_run_chomp",
        B + "RUN <<-EOT\n\techo tabbed > /t\n\tEOT\n",
        expect=Expect(files={"/t": f("tabbed\n")}),
        reason=WHY,
    ),
    Case(
        "heredoc_run_shell_expands",
        B + 'ENV V=val\nRUN <<EOF\necho "$V" > /v\nEOF\n',
        expect=Expect(files={"/v": f("val\n")}),
        reason=WHY,
    ),
    Case(
        "heredoc_copy_expand",
        B + "ARG NAME=world\nCOPY <<EOF /greeting\nhello $NAME 'q' \"d\"\nEOF\n"
        "COPY <<'EOF' /literal\nhello $NAME\nEOF\n",
        expect=Expect(
            files={"/greeting": f("hello world 'q' \"d\"\n"), "/literal": f("hello $NAME\n")}
        ),
        reason=WHY,
    ),
    Case(
        "heredoc_copy_several_to_dir",
        B + "COPY --chmod=0755 <<one.sh <<two.sh /scripts/\necho 1\none.sh\necho 2\ntwo.sh\n",
        expect=Expect(
            files={
                "/scripts": d(),
                "/scripts/one.sh": f("echo 1\n", 0o755),
                "/scripts/two.sh": f("echo 2\n", 0o755),
            }
        ),
        reason=WHY,
    ),
    Case(
        "heredoc_add_chown",
        B + "ADD --chown=app <<-EOF /home/app/conf\n\tkey=value\n\tEOF\n",
        expect=Expect(files={"/home/app/conf": f("key=value\n", 0o644, 1000, 1000)}),
        reason=WHY,
    ),
    Case(
        "onbuild_triggers_run",
        B.replace("\n", " AS parent\n") + "ONBUILD RUN echo triggered > /triggered\n"
        "ONBUILD COPY a.txt /from-trigger\nRUN echo parent > /parent\n"
        "FROM parent\nRUN cat /triggered > /seen\n",
        files={"a.txt": "A\n"},
        expect=Expect(
            files={
                "/parent": f("parent\n"),
                "/triggered": f("triggered\n"),
                "/from-trigger": f("A\n"),
                "/seen": f("triggered\n"),
            },
            config={"OnBuild": None},
        ),
        reason="buildah's OCI format drops ONBUILD; BuildKit runs triggers and clears OnBuild",
    ),
    Case(
        "onbuild_config",
        B + "ONBUILD RUN echo hi\nONBUILD ENV A=1\n",
        expect=Expect(config={"OnBuild": ["RUN echo hi", "ENV A=1"]}),
        reason="buildah's OCI config has no OnBuild; BuildKit stores the trigger text",
    ),
]
