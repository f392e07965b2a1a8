"""RUN --mount."""

from conformance.case import Case, Expect, f

B = "FROM {busybox}\n"
WHY = "buildah 1.28 leaves the RUN --mount target in the layer; BuildKit removes it"
CASES = [
    Case(
        "mount_bind_context",
        B + "RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/x > /out\n"
        "RUN --mount=target=/ctx ls /ctx > /listing\n",
        files={"data/x": "from context\n", ".dockerignore": "ignored\n", "ignored": "no"},
    ),
    Case(
        "mount_bind_rw_discarded",
        B + "RUN --mount=type=bind,source=data,target=/d,rw echo changed > /d/x && cat /d/x > /o\n"
        "RUN --mount=type=bind,source=data,target=/d cat /d/x > /o2\n",
        files={"data/x": "orig\n"},
    ),
    Case(
        "mount_bind_from_stage",
        B.replace("\n", " AS tools\n")
        + "RUN mkdir /kit && echo tool > /kit/t\n"
        + B
        + "RUN --mount=type=bind,from=tools,source=/kit,target=/k cp /k/t /t\n",
    ),
    Case(
        "mount_cache_persists_between_steps",
        B + "RUN --mount=type=cache,target=/var/cache/c,id=conformance-$RANDOM-x "
        "echo 1 > /var/cache/c/n\n"
        "RUN --mount=type=cache,target=/c2,id=conf-cache-shared sh -c 'echo x > /c2/log'\n"
        "RUN --mount=type=cache,target=/c3,id=conf-cache-shared wc -l < /c3/log > /count\n",
    ),
    Case(
        "mount_cache_owner",
        B + "USER app\nRUN --mount=type=cache,target=/home/app/.cache,uid=1000,gid=1000,"
        "id=conf-owned,sharing=locked touch /home/app/.cache/ok && echo ok > /tmp/ok\n",
    ),
    Case(
        "mount_tmpfs",
        B + "RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c "
        "'echo t > /scratch/f && grep -c scratch /proc/mounts > /n'\n",
    ),
    Case(
        "mount_secret_file",
        B + 'RUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = s3cret '
        "&& stat -c %a /run/secrets/token > /mode\n"
        "RUN --mount=type=secret,id=token,target=/etc/tok,mode=0440,uid=1000 "
        "stat -c '%a %u' /etc/tok > /mode2\n",
        secrets={"token": "s3cret"},
    ),
    Case(
        "mount_secret_env",
        B + 'RUN --mount=type=secret,id=token,env=TOKEN test "$TOKEN" = s3cret && echo y > /y\n',
        secrets={"token": "s3cret"},
        expect=Expect(files={"/y": f("y\n")}),
        reason="RUN --mount=type=secret,env=: dockerfile 1.10 (96f746bca); v0.11.6 rejects the key",
    ),
    Case(
        "mount_secret_missing_optional",
        B + "RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo ok > /ok\n",
    ),
    Case(
        "mount_secret_missing_required",
        B + "RUN --mount=type=secret,id=absent,required=true true\n",
        error="secret absent not found",
    ),
]
