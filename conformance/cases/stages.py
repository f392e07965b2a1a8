"""Multi-stage builds: targets, pruning, stage references, platforms."""

from conformance.case import Case

B = "FROM {busybox}\n"
CASES = [
    Case(
        "stage_chain",
        B.replace("\n", " AS one\n") + "RUN echo 1 > /one\n"
        "FROM one AS two\nRUN echo 2 > /two\nFROM two\nRUN cat /one /two > /both\n",
    ),
    Case(
        "stage_target_middle",
        B.replace("\n", " AS a\n")
        + "RUN echo a > /a\n"
        + B.replace("\n", " AS b\n")
        + "RUN echo b > /b\n",
        target="a",
    ),
    Case(
        "stage_target_skips_failing",
        B.replace("\n", " AS good\n")
        + "RUN echo g > /g\n"
        + B.replace("\n", " AS bad\n")
        + "RUN exit 1\n",
        target="good",
    ),
    Case(
        "stage_unused_failing_not_built",
        B.replace("\n", " AS broken\n")
        + "RUN exit 7\n"
        + B.replace("\n", " AS used\n")
        + "RUN echo u > /u\n"
        + B
        + "COPY --from=used /u /u\n",
    ),
    Case(
        "stage_names_case_insensitive",
        B.replace("\n", " AS Builder\n") + "RUN echo x > /x\n" + B + "COPY --from=builder /x /x\n",
    ),
    Case(
        "stage_env_not_inherited_across_from",
        B.replace("\n", " AS s\n") + "ENV S=1\n" + B + 'RUN echo "[$S]" > /s\n',
    ),
    Case(
        "stage_from_inherits_config",
        B.replace("\n", " AS s\n") + "ENV S=1\nUSER app\n"
        'WORKDIR /w\nLABEL l=1\nFROM s\nRUN echo "$S" > /tmp/s\n',
    ),
    Case("from_platform_amd64", "FROM --platform=linux/amd64 {busybox}\nRUN echo p > /p\n"),
    Case(
        "from_platform_other_single_arch",
        "FROM --platform=linux/arm64 {busybox}\nRUN true\n",
    ),
    Case(
        "stage_copy_from_later_unused",
        B.replace("\n", " AS first\n")
        + "RUN echo f > /f\n"
        + B.replace("\n", " AS final\n")
        + "COPY --from=first /f /f\n"
        + B.replace("\n", " AS extra\n")
        + "RUN exit 1\n",
        target="final",
    ),
]
