"""Config-only instructions: ENV, LABEL, USER, WORKDIR, CMD, ENTRYPOINT, EXPOSE, ..."""

from conformance.case import Case, Expect, f

CASES = [
    Case(
        "env_forms",
        'FROM {busybox}\nENV A=1 B="two words" C=three\\ words\nENV D legacy form value\n'
        "ENV E=$A-${B}\n",
    ),
    Case("env_sees_previous_values", "FROM {busybox}\nENV A=1\nENV A=2 B=$A\nENV C=${A}x\n"),
    Case("env_path_override", "FROM {busybox}\nENV PATH=/opt/bin:$PATH\nRUN echo $PATH > /path\n"),
    Case(
        "label_forms",
        'FROM {busybox}\nLABEL a=b "c d"=e f="g h"\nLABEL multi.one=1 \\\n'
        "      multi.two=2\nLABEL legacy value with spaces\n",
    ),
    Case(
        "label_expansion",
        "FROM {busybox}\nENV V=1.0\nLABEL version=$V \"quoted key\"=\"v $V\" 'single'='$V'\n",
    ),
    Case("user_name", "FROM {busybox}\nUSER app\n"),
    Case("user_uid_gid", "FROM {busybox}\nUSER 1000:2000\n"),
    Case("workdir_relative", "FROM {busybox}\nWORKDIR /a\nWORKDIR b\nENV D=c\nWORKDIR $D\n"),
    Case("cmd_entrypoint_exec", 'FROM {busybox}\nENTRYPOINT ["/bin/sh", "-c"]\nCMD ["echo hi"]\n'),
    Case("cmd_entrypoint_shell", 'FROM {busybox}\nENTRYPOINT exec echo "$HOME"\nCMD echo two\n'),
    Case("entrypoint_resets_inherited_cmd", 'FROM {busybox}\nENTRYPOINT ["/bin/echo"]\n'),
    Case("cmd_json_not_expanded", 'FROM {busybox}\nENV X=1\nCMD ["echo", "$X", "${X}"]\n'),
    Case("expose_ports", "FROM {busybox}\nEXPOSE 80 443/tcp 53/udp\nEXPOSE 8080\n"),
    Case(
        "volume_forms",
        'FROM {busybox}\nVOLUME /data\nVOLUME ["/a", "/b c"]\nVOLUME /x /y\n',
    ),
    Case("stopsignal_name", "FROM {busybox}\nSTOPSIGNAL SIGKILL\n"),
    Case("stopsignal_number", "FROM {busybox}\nSTOPSIGNAL 9\n"),
    Case("maintainer_label", "FROM {busybox}\nMAINTAINER someone <a@b.c>\nLABEL x=y\n"),
    Case("escape_backtick", "# escape=`\nFROM {busybox}\nRUN echo one `\n    two > /out\n"),
    Case(
        "escape_backtick_keeps_backslash",
        "# escape=`\nFROM {busybox}\nENV W=C:\\dir X=a`$b\n",
    ),
    Case(
        "continuation_comments_blank_lines",
        "FROM {busybox}\nRUN echo a \\\n# a comment inside\n\n    b \\\n  # another\n"
        "    c > /out\n",
    ),
    Case("crlf_and_bom", "\ufeffFROM {busybox}\r\nRUN echo crlf > /out\r\nENV A=b\r\n"),
    Case(
        "syntax_directive",
        "# syntax=docker/dockerfile:1\nFROM {busybox}\nRUN echo x > /x\n",
        expect=Expect(files={"/x": f("x\n")}),
        reason="BuildKit would pull the docker/dockerfile:1 frontend image: no registry "
        "access here (v0.11.6 cannot build it offline)",
    ),
    Case(
        "expand_defaults",
        "FROM {busybox}\nENV S=set E=\nENV A=${S:-d} B=${U:-d} C=${E:-d} F=${S:+alt} G=${U:+alt}\n",
    ),
    Case(
        "expand_patterns",
        "FROM {busybox}\nENV V=foo.tar.gz\nENV A=${V#*.} B=${V##*.} C=${V%.*} D=${V%%.*} "
        "E=${V/o/0} F=${V//o/0}\nENV N= \nENV G=${N-unset} H=${M-unset} I=${N+set}\n",
        expect=Expect(
            config={
                "Env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "V=foo.tar.gz",
                    "A=tar.gz",
                    "B=gz",
                    "C=foo.tar",
                    "D=foo",
                    "E=f0o.tar.gz",
                    "F=f00.tar.gz",
                    "N=",
                    "G=",
                    "H=unset",
                    "I=set",
                ]
            }
        ),
        reason="${v-w} ${v#p} ${v%p} ${v/p/r}: dockerfile 1.6/1.7 syntax (580eb9348, "
        "4f459a4cd, 9a3f9f36e); v0.11.6 rejects them",
    ),
    Case(
        "expose_ranges",
        "FROM {busybox}\nEXPOSE 8000-8002 9000-9001/udp 7/TCP\n",
    ),
    Case(
        "shell_instruction",
        'FROM {busybox}\nSHELL ["/bin/sh", "-ec"]\nRUN echo $0 > /shell\nCMD echo hi\n',
    ),
    Case(
        "healthcheck_all_options",
        "FROM {busybox}\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m "
        "--start-interval=2s --retries=4 CMD wget -q localhost || exit 1\n",
        expect=Expect(
            config={
                "Healthcheck": {
                    "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
                    "Interval": 30_000_000_000,
                    "Timeout": 5_000_000_000,
                    "StartPeriod": 60_000_000_000,
                    "StartInterval": 2_000_000_000,
                    "Retries": 4,
                }
            }
        ),
        reason="HEALTHCHECK --start-interval: dockerfile 1.6 (c6a183592, PR #3998); v0.11.6 "
        "rejects the flag",
    ),
    Case(
        "healthcheck_exec_and_none",
        'FROM {busybox} AS a\nHEALTHCHECK CMD ["true"]\nFROM a\nHEALTHCHECK NONE\n',
    ),
    Case(
        "workdir_owned_by_user",
        "FROM {busybox}\nUSER app\nWORKDIR /srv/app\n",
    ),
]
