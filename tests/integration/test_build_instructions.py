"""Each supported instruction, built for real and observed in the image."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

from tests.conftest import BUSYBOX, Ocibuild


def write(ctx: Path, dockerfile: str, **files: str) -> Path:
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, content in files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return ctx


def test_run_shell_and_exec_form(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image}\n"
        "RUN echo shell > /shell.txt && echo $0 >> /shell.txt\n"
        'RUN ["/bin/sh", "-c", "echo exec > /exec.txt"]\n',
    )
    out = ocb.build(context, "-t", "t-run")
    assert "[2/3] RUN echo shell" in out.stderr
    assert "[3/3] RUN [" in out.stderr
    assert ocb.run("t-run", "cat", "/shell.txt").stdout == "shell\n/bin/sh\n"
    assert ocb.run("t-run", "cat", "/exec.txt").stdout == "exec\n"


def test_run_output_and_env(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image}\nARG A=from-arg\nENV B=from-env\n"
        'RUN echo "A=$A B=$B PATH=$PATH HOME=$HOME"\n',
    )
    out = ocb.build(context, "--build-arg", "A=given", "-t", "t-env")
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert f"A=given B=from-env PATH={path} HOME=/root" in out.stderr
    env = ocb.config("t-env")["config"]["Env"]
    assert "B=from-env" in env
    assert not any(e.startswith("A=") for e in env), "ARGs never land in the config"


def test_copy_files_dirs_globs(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image}\n"
        "COPY a.txt /dst/\n"
        "COPY dir /dir-contents\n"
        "COPY *.md /docs/\n"
        "COPY a.txt /renamed.txt\n",
        **{"a.txt": "A\n", "dir/x": "X\n", "dir/sub/y": "Y\n", "one.md": "1", "two.md": "2"},
    )
    ocb.build(context, "-t", "t-copy")
    listing = ocb.run(
        "t-copy",
        "sh",
        "-c",
        "cat /dst/a.txt /dir-contents/x /dir-contents/sub/y "
        "/renamed.txt; ls /docs; ls -ln /dst/a.txt",
    ).stdout.splitlines()
    assert listing[:4] == ["A", "X", "Y", "A"]
    assert listing[4:6] == ["one.md", "two.md"]
    fields = listing[6].split()
    assert fields[2:4] == ["0", "0"], "context files are copied as root:root"


def test_copy_chown_chmod(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image}\n"
        "COPY --chown=app:extra --chmod=640 f /f\n"
        "COPY --chown=1234 f /g\n"
        "COPY --chown=app d /d\n",
        f="F",
        **{"d/inner": "I"},
    )
    ocb.build(context, "-t", "t-chown")
    out = ocb.run("t-chown", "stat", "-c", "%u:%g %a %n", "/f", "/g", "/d", "/d/inner").stdout
    assert out.splitlines() == [
        "1000:2000 640 /f",
        "1234:1234 644 /g",
        "1000:1000 755 /d",
        "1000:1000 644 /d/inner",
    ]


def test_copy_chown_unknown_user_is_root(ocb: Ocibuild, base_image: str, context: Path) -> None:
    """As BuildKit (v0.11.6 and current): a name the image lacks is id 0, not an error;
    ocibuild says so in a warning with the position."""
    write(
        context,
        f"FROM {base_image}\nCOPY --chown=nobody-here f /f\nCOPY --chown=1000:nogroup-here f /g\n",
        f="F",
    )
    res = ocb.build(context, "-t", "t-chown-unknown")
    assert "Dockerfile:2: COPY --chown=nobody-here: user 'nobody-here'" in res.stderr
    assert "group 'nogroup-here'" in res.stderr
    out = ocb.run("t-chown-unknown", "stat", "-c", "%u:%g", "/f", "/g").stdout
    assert out.splitlines() == ["0:0", "1000:1000"]


def test_copy_link_chown_name_is_an_error(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(context, f"FROM {base_image}\nCOPY --link --chown=daemon f /f\n", f="F")
    res = ocb.build(context, check=False)
    assert res.returncode == 1
    assert "Dockerfile:2: COPY:" in res.stderr
    assert "--link" in res.stderr and "numeric ids" in res.stderr
    assert "Traceback" not in res.stderr


def test_add_local_file_and_tar(ocb: Ocibuild, base_image: str, context: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/readme.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (context / "pkg.tar.gz").write_bytes(buf.getvalue())
    write(
        context,
        f"FROM {base_image}\nADD pkg.tar.gz /opt/\nADD plain.txt /opt/\n",
        **{"plain.txt": "P\n"},
    )
    ocb.build(context, "-t", "t-add")
    out = ocb.run("t-add", "sh", "-c", "cat /opt/pkg/readme.txt /opt/plain.txt; ls /opt").stdout
    assert out == "inside the archive\nP\npkg\nplain.txt\n"


def test_workdir_user_and_metadata(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image}\n"
        "USER app\n"
        "WORKDIR /srv/app\n"
        "WORKDIR sub\n"
        "RUN id > id.txt && pwd > pwd.txt\n"
        'CMD ["cat", "id.txt"]\n'
        "ENTRYPOINT []\n"
        'LABEL a=b "c d"="e f"\n'
        "EXPOSE 80 53/udp 8000-8001\n"
        'VOLUME ["/data"]\n'
        "STOPSIGNAL SIGKILL\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "RUN echo shell-is-$0\n",
    )
    out = ocb.build(context, "-t", "t-meta")
    assert "shell-is-/bin/sh" in out.stderr
    cfg = ocb.config("t-meta")["config"]
    assert cfg["User"] == "app"
    assert cfg["WorkingDir"] == "/srv/app/sub"
    assert cfg["Labels"] == {"a": "b", "c d": "e f"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGKILL"
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    run = ocb.run("t-meta", "sh", "-c", "cat id.txt pwd.txt; stat -c %u:%g /srv/app/sub").stdout
    assert run.splitlines() == [
        # supplementary groups: the primary gid, then the memberships listed in the
        # image's /etc/group (as BuildKit v0.11.6 shows them)
        "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)",
        "/srv/app/sub",
        "1000:1000",
    ]


def test_user_numeric_and_group(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(context, f"FROM {base_image}\nUSER 4242:extra\nRUN id > /tmp/id\n")
    ocb.build(context, "-t", "t-user")
    # an explicit group: no other supplementary group than the primary one (runc's
    # GetExecUser + BuildKit's ensureAdditionalGids; observed on BuildKit v0.11.6)
    out = ocb.run("t-user", "cat", "/tmp/id").stdout
    assert out == "uid=4242 gid=2000(extra) groups=2000(extra)\n"


def test_cmd_entrypoint_run(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(context, f'FROM {base_image}\nENTRYPOINT ["echo", "entry"]\nCMD ["default"]\n')
    ocb.build(context, "-t", "t-ep")
    assert ocb.run("t-ep").stdout == "entry default\n"
    assert ocb.run("t-ep", "other").stdout == "entry other\n"
    cfg = ocb.config("t-ep")["config"]
    assert cfg["Entrypoint"] == ["echo", "entry"] and cfg["Cmd"] == ["default"]


def test_shell_form_cmd(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(context, f"FROM {base_image}\nCMD echo $HOME\n")
    ocb.build(context, "-t", "t-cmd")
    assert ocb.config("t-cmd")["config"]["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]
    assert ocb.run("t-cmd").stdout == "/root\n"


def test_args_global_and_stage(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        "ARG BASE=" + base_image + "\nARG V=global\n"
        "FROM $BASE\n"
        'RUN echo "unset:[$V]"\n'
        "ARG V\n"
        'RUN echo "inherited:[$V]"\n'
        "ARG V=stage\n"
        'RUN echo "stage:[$V]"\n',
    )
    out = ocb.build(context).stderr
    assert "unset:[]" in out and "inherited:[global]" in out and "stage:[stage]" in out
    out = ocb.build(context, "--build-arg", "V=cli").stderr
    assert "inherited:[cli]" in out and "stage:[cli]" in out


def test_multistage_copy_from(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image} AS builder\n"
        "RUN mkdir /out && echo built > /out/artifact && chown 1000:1000 /out/artifact\n"
        f"FROM {base_image} AS unused\n"
        "RUN exit 7\n"
        "FROM scratch\n"
        "COPY --from=builder /out/artifact /artifact\n"
        "COPY --from=0 /bin/busybox /bin/busybox\n",
    )
    out = ocb.build(context, "-t", "t-multi")
    assert "exit 7" not in out.stderr, "a stage the target does not need is not built"
    assert ocb.run("t-multi", "/bin/busybox", "cat", "/artifact").stdout == "built\n"
    owner = ocb.run("t-multi", "/bin/busybox", "stat", "-c", "%u", "/artifact").stdout
    assert owner == "1000\n", "COPY --from keeps the owner from the source stage"


def test_target_stage(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image} AS first\nRUN echo first > /which\n"
        f"FROM {base_image} AS second\nRUN exit 1\n",
    )
    ocb.build(context, "--target", "first", "-t", "t-target")
    assert ocb.run("t-target", "cat", "/which").stdout == "first\n"


def test_dockerignore(ocb: Ocibuild, base_image: str, context: Path) -> None:
    write(
        context,
        f"FROM {base_image}\nCOPY . /ctx/\n",
        **{
            ".dockerignore": "*.log\nsecret/\n!keep.log\n",
            "a.log": "x",
            "keep.log": "k",
            "secret/key": "s",
            "src/main.c": "c",
        },
    )
    ocb.build(context, "-t", "t-ignore")
    out = ocb.run("t-ignore", "find", "/ctx", "-type", "f").stdout.split()
    assert sorted(out) == [
        "/ctx/.dockerignore",
        "/ctx/Dockerfile",
        "/ctx/keep.log",
        "/ctx/src/main.c",
    ]


def test_dockerfile_from_stdin(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "f").write_text("stdin\n")
    ocb("build", "-f", "-", "-t", "t-stdin", str(context), input=f"FROM {base_image}\nCOPY f /f\n")
    assert ocb.run("t-stdin", "cat", "/f").stdout == "stdin\n"


def test_from_oci_layout(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    write(context, f"FROM {base_image}\nRUN echo layered > /l\n")
    ocb.build(context, "-t", "t-src", "--output", f"type=oci,dest={layout}")
    other = tmp_path / "other-store"
    fresh = Ocibuild(other)
    ctx2 = tmp_path / "ctx2"
    ctx2.mkdir()
    write(ctx2, f"FROM oci-layout://{layout}:latest\nRUN cat /l\n")
    out = fresh.build(ctx2, "-t", "t-from-layout")
    assert "layered" in out.stderr
    assert fresh.run("t-from-layout", "cat", "/l").stdout == "layered\n"


def test_scratch_with_busybox_only(ocb: Ocibuild, context: Path) -> None:
    shutil.copy(BUSYBOX, context / "busybox")
    write(context, 'FROM scratch\nCOPY busybox /busybox\nCMD ["/busybox", "echo", "hi"]\n')
    ocb.build(context, "-t", "t-scratch")
    assert ocb.run("t-scratch").stdout == "hi\n"
    cfg = ocb.config("t-scratch")
    assert cfg["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ]
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    assert os.path.getsize(context / "busybox") > 0


def test_onbuild_of_an_image_names_a_stage(ocb: Ocibuild, base_image: str, context: Path) -> None:
    """Current BuildKit (4cf7a1a0d): an ONBUILD COPY --from / RUN --mount=from of a base
    *image* names a stage of the child Dockerfile; that stage (and what it needs) is built
    when the trigger is read, even though nothing else in the target needs it."""
    write(
        context,
        f"FROM {base_image}\nONBUILD COPY --from=src /src /got\n"
        "ONBUILD RUN --mount=from=other,target=/m cat /m/other > /got2\n",
    )
    ocb.build(context, "-t", "t-onbuild-stage-base")
    write(
        context,
        f"FROM {base_image} AS pre\nRUN echo pre > /pre\n"
        "FROM pre AS src\nRUN cat /pre > /src && echo src >> /src\n"
        f"FROM {base_image} AS other\nRUN echo other > /other\n"
        "FROM t-onbuild-stage-base\n",
    )
    ocb.build(context, "-t", "t-onbuild-stage")
    out = ocb.run("t-onbuild-stage", "cat", "/got", "/got2").stdout
    assert out == "pre\nsrc\nother\n"
    assert "OnBuild" not in (ocb.config("t-onbuild-stage").get("config") or {})
