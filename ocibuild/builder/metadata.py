"""Instructions that change only the image config: ENV, LABEL, USER, CMD, ...

Each is a pure planner: ``plan_X(view, instr) -> StepPlan`` (see ``stepplan``); the
executor applies the plan."""

from __future__ import annotations

import re
import signal

from ocibuild.builder.state import go_quote_list, next_workdir
from ocibuild.builder.step import fail
from ocibuild.builder.stepplan import StepPlan, StepView
from ocibuild.dockerfile.instructions import (
    Cmd,
    Command,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
)


def command_args(shell: list[str], command: Command) -> list[str]:
    """Exec form as written; shell form prefixed with the stage's SHELL."""
    if command.exec_form:
        return list(command.args)
    return [*shell, command.args[0] if command.args else ""]


def env_list(env: list[str], key: str, value: str) -> list[str]:
    """``env`` (``NAME=value`` items) with ``key`` set: replaced in place, else appended."""
    out = list(env)
    for i, item in enumerate(out):
        if item.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def plan_env(view: StepView, instr: Env) -> StepPlan:
    # All pairs see the environment from before this instruction, as in BuildKit.
    pairs = list(instr.pairs)  # expanded before dispatch, all with the env before
    env = list(view.config.get("Env") or [])
    for key, value in pairs:
        if not key:
            raise fail(instr, "ENV names can not be blank")
        env = env_list(env, key, value)
    return StepPlan(
        history="ENV " + " ".join(f"{k}={v}" for k, v in pairs),
        config={"Env": env},
        args_unset=tuple(k for k, _ in pairs),  # a later ENV replaces an ARG's value
    )


def plan_label(view: StepView, instr: Label) -> StepPlan:
    pairs = list(instr.pairs)
    labels = dict(view.config.get("Labels") or {})
    for key, value in pairs:
        if not key:
            raise fail(instr, "LABEL names can not be blank")
        labels[key] = value
    text = " ".join(f'"{k}"="{v}"' for k, v in pairs)
    return StepPlan(history=f"LABEL {text}", config={"Labels": labels})


def plan_user(view: StepView, instr: User) -> StepPlan:
    user = instr.user
    if not user:
        raise fail(
            instr, "USER requires a user name or uid", hint="e.g. USER app or USER 1000:1000"
        )
    return StepPlan(history=f"USER {user}", config={"User": user})


def plan_cmd(view: StepView, instr: Cmd) -> StepPlan:
    args = command_args(view.shell, instr.command)
    return StepPlan(history=f"CMD {go_quote_list(args)}", config={"Cmd": args}, flags=("cmd_set",))


def plan_entrypoint(view: StepView, instr: Entrypoint) -> StepPlan:
    args = command_args(view.shell, instr.command)
    # An ENTRYPOINT resets a CMD inherited from the base image.
    unset = () if "cmd_set" in view.flags else ("Cmd",)
    return StepPlan(
        history=f"ENTRYPOINT {go_quote_list(args)}", config={"Entrypoint": args}, unset=unset
    )


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def plan_expose(view: StepView, instr: Expose) -> StepPlan:
    ports = dict(view.config.get("ExposedPorts") or {})
    words = list(instr.ports)  # expanded (and split into words) before dispatch
    for word in words:
        match = _PORT.match(word)
        if not match:
            raise fail(instr, f"invalid port {word!r}", hint="e.g. EXPOSE 80, 80/udp, 8000-8010")
        low, high, proto = int(match[1]), int(match[2] or match[1]), (match[3] or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise fail(
                instr, f"invalid protocol {proto!r} in {word!r}", hint="use tcp, udp or sctp"
            )
        if not 0 < low <= high <= 65535:
            raise fail(instr, f"invalid port range {word!r}", hint="ports are 1-65535, low-high")
        for port in range(low, high + 1):
            ports[f"{port}/{proto}"] = {}
    return StepPlan(history="EXPOSE " + " ".join(words), config={"ExposedPorts": ports})


def plan_volume(view: StepView, instr: Volume) -> StepPlan:
    volumes = dict(view.config.get("Volumes") or {})
    paths = list(instr.paths)  # expanded (shell form: split into words) before dispatch
    for path in paths:
        if not path.strip():
            raise fail(instr, "VOLUME specified can not be an empty string")
        volumes[path] = {}
    return StepPlan(history=f"VOLUME {go_quote_list(paths)}", config={"Volumes": volumes})


def valid_signal(value: str) -> bool:
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value) != 0  # moby's signal.ParseSignal takes any non-zero number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if re.fullmatch(r"SIGRTM(IN\+\d+|AX-\d+)", name):
        return True
    return name in signal.Signals.__members__ or name in ("SIGRTMIN", "SIGRTMAX")


def plan_stopsignal(view: StepView, instr: StopSignal) -> StepPlan:
    value = instr.signal
    if not valid_signal(value):
        raise fail(instr, f"invalid signal: {value}", hint="e.g. STOPSIGNAL SIGTERM or 15")
    return StepPlan(history=f"STOPSIGNAL {value}", config={"StopSignal": value})


def plan_shell(view: StepView, instr: Shell) -> StepPlan:
    if not instr.args:
        raise fail(
            instr, "SHELL requires at least one argument", hint='e.g. SHELL ["/bin/bash", "-c"]'
        )
    shell = list(instr.args)
    return StepPlan(history=f"SHELL {go_quote_list(shell)}", config={"Shell": shell})


def plan_maintainer(view: StepView, instr: Maintainer) -> StepPlan:
    author = instr.name
    return StepPlan(history=f"MAINTAINER {author}", author=author)


_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str) -> int | None:
    """A Go duration (``1m30s``) in nanoseconds, or None if malformed."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    return int(total) if pos == len(text) and pos > 0 else None


def plan_healthcheck(view: StepView, instr: Healthcheck) -> StepPlan:
    if instr.command is None:
        health: dict[str, object] = {"Test": ["NONE"]}
    else:
        cmd = instr.command
        test = ["CMD", *cmd.args] if cmd.exec_form else ["CMD-SHELL", cmd.args[0]]
        health = {"Test": test}
        for flag_name, raw in instr.health:
            key = {
                "interval": "Interval",
                "timeout": "Timeout",
                "start-period": "StartPeriod",
                "start-interval": "StartInterval",
                "retries": "Retries",
            }[flag_name]  # the parser accepts these names only
            value = raw
            if key == "Retries":
                if not value.isdigit() or int(value) < 1:
                    raise fail(instr, f"--retries must be a positive integer, not {value!r}")
                health[key] = int(value)
                continue
            nanos = parse_duration(value)
            if nanos is None or (0 < nanos < 10**6):
                raise fail(instr, f"invalid duration --{flag_name}={value}", hint="e.g. 30s, 1m30s")
            if nanos:
                health[key] = nanos
    return StepPlan(history=f"HEALTHCHECK {health['Test']}", config={"Healthcheck": health})


def plan_onbuild(view: StepView, instr: Onbuild) -> StepPlan:
    triggers = [*(view.config.get("OnBuild") or []), instr.trigger_text]
    return StepPlan(history=f"ONBUILD {instr.trigger_text}", config={"OnBuild": triggers})


def clean_workdir(current: str, path: str) -> str:
    return next_workdir(current, path)
