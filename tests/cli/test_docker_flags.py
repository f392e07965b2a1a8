"""`ocibuild build` with the flags and forms a docker build / buildx user types."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import Ocibuild


def _df(context: Path, text: str, name: str = "Dockerfile") -> None:
    (context / name).write_text(text)


def test_quiet_prints_only_the_image_id(ocb: Ocibuild, base_image: str, context: Path) -> None:
    _df(context, f"FROM {base_image}\nRUN echo a-line-of-output\n")
    r = ocb.build(context, "-q", "--no-cache")
    assert r.stdout.startswith("sha256:") and r.stdout.count("\n") == 1
    assert r.stderr == ""
    r2 = ocb.build(context, "--progress", "quiet")
    assert r2.stderr == "" and r2.stdout.strip().startswith("sha256:")


def test_iidfile_metadata_file_label_platform(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    _df(context, f"FROM {base_image}\nLABEL from=dockerfile keep=yes\n")
    iid, meta, layout = tmp_path / "iid", tmp_path / "meta.json", tmp_path / "layout"
    r = ocb.build(
        context,
        "-t",
        "flags:1",
        "--iidfile",
        str(iid),
        "--metadata-file",
        str(meta),
        "--label",
        "from=cli",
        "--platform",
        "linux/amd64",
        "--rm",
        "--force-rm",
        "--pull=missing",
        "--no-cache=false",
        "-o",
        f"type=oci,dest={layout}",
    )
    image_id = r.image_id
    assert iid.read_text() == image_id
    doc = json.loads(meta.read_text())
    assert doc["containerimage.config.digest"] == image_id
    assert doc["image.name"] == "flags:1"
    index = json.loads((layout / "index.json").read_text())
    assert doc["containerimage.digest"] == index["manifests"][0]["digest"]
    labels = ocb.config("flags:1")["config"]["Labels"]
    assert labels == {"from": "cli", "keep": "yes"}


def test_unrunnable_platform_is_one_clear_error(ocb: Ocibuild, context: Path) -> None:
    _df(context, "FROM scratch\n")
    r = ocb.build(context, "--platform", "windows/amd64", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("error: platform windows/amd64: only linux images can be built")
    assert r.stderr.count("\n") == 2  # the error and one hint


def test_pull_is_a_switch_and_no_cache_takes_a_value(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    _df(context, f"FROM {base_image}\nRUN cat /proc/sys/kernel/random/uuid > /stamp\n")
    ocb.build(context, "--pull=never", "-t", "sw:1")  # the policy form
    first = ocb("run", "sw:1", "cat", "/stamp").stdout
    ocb.build(context, "--no-cache=false", "-t", "sw:1")
    assert ocb("run", "sw:1", "cat", "/stamp").stdout == first  # cached
    ocb.build(context, "--no-cache=true", "-t", "sw:1")
    assert ocb("run", "sw:1", "cat", "/stamp").stdout != first  # rebuilt
    r = ocb.build(context, "--no-cache=maybe", check=False)
    assert r.returncode == 1 and "--no-cache=maybe: expected true or false" in r.stderr
    # `--pull CONTEXT`: the switch takes no value, so it does not swallow the context
    # (FROM scratch: nothing to pull, no registry reached)
    _df(context, "FROM scratch\nLABEL pulled=switch\n")
    ocb("build", "--pull", "-t", "sw:2", str(context))
    assert ocb.config("sw:2")["config"]["Labels"] == {"pulled": "switch"}


def test_output_path_and_stdout(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    _df(context, f"FROM {base_image}\nRUN echo streamed > /marker\n")
    out = tmp_path / "rootfs"
    ocb.build(context, "-o", str(out))  # buildx: -o PATH is type=local
    assert (out / "marker").read_text() == "streamed\n"
    proc = subprocess.run(
        [sys.executable, "-m", "ocibuild", "build", "-q", "-o", "-", str(context)],
        capture_output=True,
        env={"OCIBUILD_ROOT": str(ocb.root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
        marker = tf.extractfile("marker")
        assert marker is not None and marker.read() == b"streamed\n"
    assert not (Path.cwd() / "-").exists()


def test_context_from_stdin(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # a Dockerfile on stdin: no context
    r = ocb("build", "-t", "stdin:df", "-", input=f"FROM {base_image}\nRUN echo df > /x\n")
    assert ocb.run("stdin:df", "cat", "/x").stdout == "df\n"
    # a tar archive of the context on stdin
    (context / "file.txt").write_text("from the archive\n")
    _df(context, f"FROM {base_image}\nCOPY file.txt /\n")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tf:
        tf.add(context, arcname=".")
    proc = subprocess.run(
        [sys.executable, "-m", "ocibuild", "build", "-q", "-t", "stdin:tar", "-"],
        input=data.getvalue(),
        capture_output=True,
        env={"OCIBUILD_ROOT": str(ocb.root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert ocb.run("stdin:tar", "cat", "/file.txt").stdout == "from the archive\n"
    assert r.returncode == 0


def test_containerfile_when_no_dockerfile(ocb: Ocibuild, base_image: str, context: Path) -> None:
    _df(context, f"FROM {base_image}\nRUN echo podman-style > /c\n", name="Containerfile")
    ocb.build(context, "-t", "cf:1")
    assert ocb.run("cf:1", "cat", "/c").stdout == "podman-style\n"


def test_rawjson_progress(ocb: Ocibuild, base_image: str, context: Path) -> None:
    _df(context, f"FROM {base_image}\nRUN echo json-out\n")
    r = ocb.build(context, "--progress", "rawjson", "--no-cache")
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert [e["event"] for e in events if e["event"] == "step"] == ["step", "step"]
    assert any(e["event"] == "output" and "json-out" in e["data"] for e in events)
    done = [e for e in events if e["event"] == "done"]
    assert [e["cached"] for e in done] == [False, False]
    # a rebuild: the RUN is a cache hit, said in the "cached" field (its note is the
    # step's own, not a word the reader has to parse)
    again = ocb.build(context, "--progress", "rawjson")
    done = [json.loads(line) for line in again.stderr.splitlines()]
    done = [e for e in done if e["event"] == "done"]
    assert [e["cached"] for e in done] == [False, True]
    assert not done[1]["note"].startswith("CACHED")


def test_git_context(ocb: Ocibuild, base_image: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "sub" / "Dockerfile").write_text(f"FROM {base_image}\nCOPY hello /hello\n")
    (repo / "sub" / "hello").write_text("from git\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    ocb("build", "-t", "git:1", f"file://{repo}#main:sub")
    assert ocb.run("git:1", "cat", "/hello").stdout == "from git\n"


def test_build_context_names_an_image_or_a_layout(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    # an OCI layout holding a file, to COPY --from by name
    src = tmp_path / "src"
    src.mkdir()
    _df(src, f"FROM {base_image}\nRUN echo from-the-layout > /payload\n")
    layout = tmp_path / "layout"
    ocb.build(src, "-o", f"type=oci,dest={layout}")
    # `alpine` is neither in the store nor pulled: the named context replaces it
    _df(context, "FROM alpine\nCOPY --from=files /payload /payload\n")
    ocb.build(
        context,
        "-t",
        "named:1",
        "--pull=never",
        "--build-context",
        f"alpine=docker-image://{base_image}",
        "--build-context",
        f"files=oci-layout://{layout}",
    )
    assert ocb.run("named:1", "cat", "/payload").stdout == "from-the-layout\n"
    # a local directory: COPY --from=NAME copies from it
    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "data.txt").write_text("from a local context\n")
    _df(context, f"FROM {base_image}\nCOPY --from=extra /sub/data.txt /data.txt\n")
    ocb.build(context, "-t", "named:2", "--build-context", f"extra={extra}")
    assert ocb.run("named:2", "cat", "/data.txt").stdout == "from a local context\n"
    assert ocb.run("named:2", "stat", "-c", "%u", "/data.txt").stdout == "0\n"
    r = ocb.build(context, "--build-context", f"extra={tmp_path / 'none'}", check=False)
    assert r.returncode == 1 and "is not a directory" in r.stderr


def test_ssh_agent_socket_is_forwarded(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        _df(
            context,
            f"FROM {base_image}\nRUN --mount=type=ssh "
            'test -S "$SSH_AUTH_SOCK" && echo "agent at $SSH_AUTH_SOCK" > /ssh.txt\n',
        )
        ocb.build(context, "-t", "ssh:1", "--ssh", f"default={sock}", "--no-cache")
        assert ocb.run("ssh:1", "cat", "/ssh.txt").stdout == "agent at /run/buildkit/ssh_agent.0\n"
        # the socket is not part of the image
        check = "test -e /run/buildkit || echo absent"
        assert ocb.run("ssh:1", "sh", "-c", check).stdout == "absent\n"
        _df(context, f"FROM {base_image}\nRUN --mount=type=ssh,required=true true\n")
        r = ocb.build(context, check=False)
        assert r.returncode == 1 and "no SSH agent socket for id 'default'" in r.stderr
        r = ocb.build(context, "--ssh", f"default={context / 'Dockerfile'}", check=False)
        assert r.returncode == 1 and "is not a socket" in r.stderr
    finally:
        agent.terminate()
        agent.wait()


def test_add_host_ulimit_shm_size_reach_run_steps(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    _df(
        context,
        f"FROM {base_image}\nRUN (grep -w db /etc/hosts; ulimit -n; ulimit -Hn; "
        "df -k /dev/shm | tail -1) > /seen\n",
    )
    ocb.build(
        context,
        "-t",
        "hostset:1",
        "--no-cache",
        "--add-host",
        "db:10.1.2.3",
        "--ulimit",
        "nofile=1000:2000",
        "--shm-size",
        "8m",
    )
    seen = ocb.run("hostset:1", "cat", "/seen").stdout.splitlines()
    assert seen[0].split() == ["10.1.2.3", "db"]
    # another --add-host is another RUN: not the cached one
    again = ocb.build(context, "-t", "hostset:2", "--add-host", "db:10.9.9.9")
    assert "-> HIT" not in again.stderr.split("RUN (grep", 1)[1]
    assert ocb.run("hostset:2", "cat", "/seen").stdout.split()[:2] == ["10.9.9.9", "db"]
    assert seen[1:3] == ["1000", "2000"]
    assert seen[3].split()[1] == "8192"  # /dev/shm: 8 MiB in 1k blocks
    r = ocb.build(context, "--ulimit", "nofiles=1", check=False)
    assert r.returncode == 1 and "no limit 'nofiles'" in r.stderr
    r = ocb.build(context, "--add-host", "db:not-an-ip", check=False)
    assert r.returncode == 1 and "is not an IP address" in r.stderr
    r = ocb.build(context, "--shm-size", "lots", check=False)
    assert r.returncode == 1 and "invalid --shm-size 'lots'" in r.stderr


def test_annotation_on_an_oci_output(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    _df(context, f"FROM {base_image}\nLABEL annotated=yes\n")
    layout, meta = tmp_path / "layout", tmp_path / "meta.json"
    ocb.build(
        context,
        "--annotation",
        "org.opencontainers.image.source=https://example.invalid/repo",
        "--annotation",
        "manifest:team=build",
        "-o",
        f"type=oci,dest={layout}",
        "--metadata-file",
        str(meta),
    )
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    blob = layout / "blobs" / "sha256" / digest.partition(":")[2]
    manifest = json.loads(blob.read_text())
    assert manifest["annotations"] == {
        "org.opencontainers.image.source": "https://example.invalid/repo",
        "team": "build",
    }
    assert index["manifests"][0]["size"] == blob.stat().st_size
    assert json.loads(meta.read_text())["containerimage.digest"] == digest
    # the layout stays valid for tools that read it
    ocb("pull", f"oci-layout://{layout}", check=False)  # not a registry: ignore its result
    r = ocb.build(context, "--annotation", "a=b", check=False)
    assert r.returncode == 1 and "--annotation annotates the manifest" in r.stderr
    r = ocb.build(
        context, "--annotation", "index:a=b", "-o", f"type=oci,dest={layout}", check=False
    )
    assert r.returncode == 1 and "only manifest annotations" in r.stderr
