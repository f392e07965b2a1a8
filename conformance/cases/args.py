"""ARG rules: scope, precedence, --build-arg, predefined ARGs."""

from conformance.case import Case

B = "FROM {busybox}\n"
CASES = [
    Case("arg_global_in_from", "ARG BASE={busybox}\nFROM $BASE\nRUN echo ok > /ok\n"),
    Case("arg_global_not_in_stage", "ARG G=global\n" + B + 'RUN echo "g=$G" > /g\n'),
    Case("arg_global_redeclared", "ARG G=global\n" + B + 'ARG G\nRUN echo "g=$G" > /g\n'),
    Case(
        "arg_stage_default_over_global",
        "ARG G=global\n" + B + 'ARG G=stage\nRUN echo "g=$G" > /g\n',
    ),
    Case("arg_env_wins", B + 'ARG X=arg\nENV X=env\nRUN echo "x=$X" > /x\n'),
    Case(
        "arg_build_arg_overrides",
        B + 'ARG A=default\nRUN echo "a=$A" > /a\n',
        build_args={"A": "given"},
    ),
    Case(
        "arg_build_arg_verbatim",
        B + 'ARG V\nRUN printf "%s" "$V" > /v\nENV E=$V\n',
        build_args={"V": "$HOME ${X:-y} 'q'"},
    ),
    Case(
        "arg_in_later_instructions",
        B + "ARG D=/opt/dir\nWORKDIR $D\nARG F=name\nRUN touch $F\nLABEL d=$D\n",
    ),
    Case("arg_not_in_config", B + "ARG SECRETISH=value\nENV KEPT=1\nRUN true\n"),
    Case("arg_empty_default", B + 'ARG E=\nRUN echo "[${E:-unset}]" > /e\n'),
    Case(
        "arg_multiple_in_one",
        B + 'ARG A=1 B=2 C\nRUN echo "$A$B$C" > /abc\n',
        build_args={"C": "3"},
    ),
    Case("arg_scope_per_stage", B + 'ARG S=one\nFROM {busybox}\nRUN echo "s=$S" > /s\n'),
    Case(
        "arg_platform_predefined",
        B + "ARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG BUILDPLATFORM\n"
        'RUN echo "$TARGETPLATFORM $TARGETOS $TARGETARCH $BUILDPLATFORM" > /p\n',
    ),
    Case(
        "arg_platform_global_in_from",
        "FROM --platform=$BUILDPLATFORM {busybox}\nARG TARGETARCH\nRUN echo $TARGETARCH > /a\n",
    ),
    Case(
        "arg_proxy_undeclared",
        B + 'RUN echo "p=$HTTP_PROXY n=$no_proxy" > /p\n',
        build_args={"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost"},
    ),
    Case("arg_unset_in_run_is_empty", B + 'ARG U\nRUN echo "[$U]" > /u\n'),
]
