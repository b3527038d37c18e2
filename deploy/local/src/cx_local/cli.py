"""`cx-local up|down|status|reset` — the local stack behind `make run` and the end-to-end tests."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time

import psutil

from cx_local.config import LocalConfig
from cx_local.errors import LauncherError
from cx_local.stack import Stack

DEMO_HINT = "console: {gateway}/  (demo logins are printed above; sample data loads in the background: `demo |` lines)"


def _running_pid(config: LocalConfig) -> int | None:
    if not config.pid_file.exists():
        return None
    try:
        pid = int(config.pid_file.read_text().strip())
    except ValueError:
        return None
    if psutil.pid_exists(pid) and pid != os.getpid():
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
            if "cx-local" in cmdline or "cx_local" in cmdline:
                return pid
        except psutil.Error:
            return None
    return None


def cmd_up(args: argparse.Namespace) -> int:
    config = LocalConfig()
    if (pid := _running_pid(config)) is not None:
        raise LauncherError(f"the local stack is already running (pid {pid}): `cx-local down` stops it")
    stop_requested = False

    def _request_stop(signum: int, _: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    stack = Stack(config, nlp_model="tiny" if args.tiny_nlp else None)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    config.pid_file.write_text(str(os.getpid()))
    started = time.monotonic()
    try:
        stack.check_ports()
        stack.start_infra()
        stack.provision_and_migrate()
        if not args.skip_model_build:
            stack.build_model()
        stack.start_services()
        stack.wait_ready(timeout=args.ready_timeout)
        if not args.no_demo:
            stack.seed_demo()
        stack.write_status()
        elapsed = time.monotonic() - started
        lines = [f"ready in {elapsed:.1f}s"]
        lines += [f"  {r.spec.name:<9} {r.spec.url}" for r in stack.running]
        lines.append(f"  {'openapi':<9} http://127.0.0.1:{config.gateway_port}/docs")
        lines.append("  " + DEMO_HINT.format(gateway=f"http://127.0.0.1:{config.gateway_port}"))
        lines.append("Ctrl-C stops everything; data stays in .cx/ (`make reset` wipes it)")
        stack.say("\n".join(lines))
        if not args.no_demo and args.demo_scale > 0:
            stack.start_demo_data(args.demo_scale)
        while not stop_requested:
            if failed := stack.first_failed():
                raise LauncherError(f"{failed[0]} exited unexpectedly with code {failed[1]}")
            time.sleep(0.5)
        stack.say("stopping…")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.shutdown()
        config.pid_file.unlink(missing_ok=True)
        stack.say("stopped")


def cmd_down(_: argparse.Namespace) -> int:
    config = LocalConfig()
    pid = _running_pid(config)
    if pid is None:
        print("cx-local: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout=60)
    except psutil.TimeoutExpired as exc:
        raise LauncherError(f"the stack (pid {pid}) did not stop within 60s") from exc
    except psutil.NoSuchProcess:
        pass
    print("cx-local: stopped")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    config = LocalConfig()
    pid = _running_pid(config)
    if pid is None or not config.status_file.exists():
        print("cx-local: not running")
        return 3
    status = json.loads(config.status_file.read_text())
    print(f"cx-local: running (pid {pid})  database {status['database']}  nats {status['nats']}")
    for name, info in status["services"].items():
        alive = "up" if psutil.pid_exists(info["pid"]) else "DOWN"
        print(f"  {name:<9} {alive:<4} {info['url']}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    config = LocalConfig()
    if (pid := _running_pid(config)) is not None:
        raise LauncherError(f"the local stack is running (pid {pid}): stop it first with `cx-local down`")
    if not config.state_dir.exists():
        print("cx-local: nothing to reset")
        return 0
    if not args.yes:
        answer = input(f"delete {config.state_dir} (all local data)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("cx-local: kept")
            return 1
    shutil.rmtree(config.state_dir)
    print(f"cx-local: removed {config.state_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx-local",
        description="Run the CX platform locally: embedded Postgres, NATS JetStream and all five services.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything in the foreground; Ctrl-C stops it")
    up.add_argument("--tiny-nlp", action="store_true", help="serve the tiny test model instead of the default one")
    up.add_argument("--skip-model-build", action="store_true", help="do not build the default NLP model")
    up.add_argument("--no-demo", action="store_true", help="do not load the demo tenant")
    up.add_argument(
        "--demo-scale",
        type=float,
        default=float(os.environ.get("CX_LOCAL_DEMO_SCALE", "1")),
        help="size of the demo sample data loaded in the background after start-up (1 = the full demo, 0 = none; "
        "env CX_LOCAL_DEMO_SCALE)",
    )
    up.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for readiness")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop a running `up`").set_defaults(func=cmd_down)
    sub.add_parser("status", help="show what is running").set_defaults(func=cmd_status)
    reset = sub.add_parser("reset", help="delete all local data (.cx/)")
    reset.add_argument("--yes", action="store_true", help="do not ask")
    reset.set_defaults(func=cmd_reset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LauncherError as exc:
        print(f"cx-local: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
