"""Instructions that change only the image config: ENV, LABEL, USER, CMD, ..."""

from __future__ import annotations

import re
import signal

from ocibuild.builder.state import go_quote_list, next_workdir
from ocibuild.builder.step import StepContext, StepOutcome, fail
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


def command_args(ctx: StepContext, command: Command) -> list[str]:
    """Exec form as written; shell form prefixed with the stage's SHELL."""
    if command.exec_form:
        return list(command.args)
    return [*ctx.image.shell, command.args[0] if command.args else ""]


def env_step(ctx: StepContext, instr: Env) -> StepOutcome:
    # All pairs see the environment from before this instruction, as in BuildKit.
    pairs = [(ctx.expand(instr, k), ctx.expand(instr, v)) for k, v in instr.pairs]
    for key, value in pairs:
        if not key:
            raise fail(instr, "ENV names can not be blank")
        ctx.image.set_env(key, value)
        ctx.stage.args.pop(key, None)  # a later ENV replaces an ARG's value
    ctx.image.add_history(
        ctx.created, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), empty_layer=True
    )
    return StepOutcome()


def label_step(ctx: StepContext, instr: Label) -> StepOutcome:
    pairs = [(ctx.expand(instr, k), ctx.expand(instr, v)) for k, v in instr.pairs]
    labels = dict(ctx.image.config.get("Labels") or {})
    for key, value in pairs:
        if not key:
            raise fail(instr, "LABEL names can not be blank")
        labels[key] = value
    ctx.image.config["Labels"] = labels
    text = " ".join(f'"{k}"="{v}"' for k, v in pairs)
    ctx.image.add_history(ctx.created, f"LABEL {text}", empty_layer=True)
    return StepOutcome()


def user_step(ctx: StepContext, instr: User) -> StepOutcome:
    user = ctx.expand(instr, instr.user)
    if not user:
        raise fail(
            instr, "USER requires a user name or uid", hint="e.g. USER app or USER 1000:1000"
        )
    ctx.image.config["User"] = user
    ctx.image.add_history(ctx.created, f"USER {user}", empty_layer=True)
    return StepOutcome()


def cmd_step(ctx: StepContext, instr: Cmd) -> StepOutcome:
    args = command_args(ctx, instr.command)
    ctx.image.config["Cmd"] = args
    ctx.stage_flags.add("cmd_set")
    ctx.image.add_history(ctx.created, f"CMD {go_quote_list(args)}", empty_layer=True)
    return StepOutcome()


def entrypoint_step(ctx: StepContext, instr: Entrypoint) -> StepOutcome:
    args = command_args(ctx, instr.command)
    ctx.image.config["Entrypoint"] = args
    if "cmd_set" not in ctx.stage_flags:
        # An ENTRYPOINT resets a CMD inherited from the base image.
        ctx.image.config.pop("Cmd", None)
    ctx.image.add_history(ctx.created, f"ENTRYPOINT {go_quote_list(args)}", empty_layer=True)
    return StepOutcome()


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def expose_step(ctx: StepContext, instr: Expose) -> StepOutcome:
    ports = dict(ctx.image.config.get("ExposedPorts") or {})
    words: list[str] = []
    for raw in instr.ports:
        words.extend(ctx.expand_words(instr, raw))
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
    ctx.image.config["ExposedPorts"] = ports
    ctx.image.add_history(ctx.created, "EXPOSE " + " ".join(words), empty_layer=True)
    return StepOutcome()


def volume_step(ctx: StepContext, instr: Volume) -> StepOutcome:
    volumes = dict(ctx.image.config.get("Volumes") or {})
    paths: list[str] = []
    for raw in instr.paths:
        if instr.json_form:
            paths.append(ctx.expand(instr, raw))
        else:
            paths.extend(ctx.expand_words(instr, raw))
    for path in paths:
        if not path.strip():
            raise fail(instr, "VOLUME specified can not be an empty string")
        volumes[path] = {}
    ctx.image.config["Volumes"] = volumes
    ctx.image.add_history(ctx.created, f"VOLUME {go_quote_list(paths)}", empty_layer=True)
    return StepOutcome()


def valid_signal(value: str) -> bool:
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value) != 0  # moby's signal.ParseSignal takes any non-zero number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if re.fullmatch(r"SIGRTM(IN\+\d+|AX-\d+)", name):
        return True
    return name in signal.Signals.__members__ or name in ("SIGRTMIN", "SIGRTMAX")


def stopsignal_step(ctx: StepContext, instr: StopSignal) -> StepOutcome:
    value = ctx.expand(instr, instr.signal)
    if not valid_signal(value):
        raise fail(instr, f"invalid signal: {value}", hint="e.g. STOPSIGNAL SIGTERM or 15")
    ctx.image.config["StopSignal"] = value
    ctx.image.add_history(ctx.created, f"STOPSIGNAL {value}", empty_layer=True)
    return StepOutcome()


def shell_step(ctx: StepContext, instr: Shell) -> StepOutcome:
    if not instr.args:
        raise fail(
            instr, "SHELL requires at least one argument", hint='e.g. SHELL ["/bin/bash", "-c"]'
        )
    ctx.image.config["Shell"] = list(instr.args)
    ctx.image.add_history(ctx.created, f"SHELL {go_quote_list(list(instr.args))}", empty_layer=True)
    return StepOutcome()


def maintainer_step(ctx: StepContext, instr: Maintainer) -> StepOutcome:
    ctx.image.author = ctx.expand(instr, instr.name)
    ctx.image.add_history(ctx.created, f"MAINTAINER {ctx.image.author}", empty_layer=True)
    return StepOutcome()


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


def healthcheck_step(ctx: StepContext, instr: Healthcheck) -> StepOutcome:
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
            value = ctx.expand(instr, raw)
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
    ctx.image.config["Healthcheck"] = health
    ctx.image.add_history(ctx.created, f"HEALTHCHECK {health['Test']}", empty_layer=True)
    return StepOutcome()


def onbuild_step(ctx: StepContext, instr: Onbuild) -> StepOutcome:
    triggers = list(ctx.image.config.get("OnBuild") or [])
    triggers.append(instr.trigger_text)
    ctx.image.config["OnBuild"] = triggers
    ctx.image.add_history(ctx.created, f"ONBUILD {instr.trigger_text}", empty_layer=True)
    return StepOutcome()


def clean_workdir(current: str, path: str) -> str:
    return next_workdir(current, path)
