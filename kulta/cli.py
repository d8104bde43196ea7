"""The ``kulta`` command line: parse arguments, call the application, print results.

Subcommands: validate, plan, preview, run, status, history, promote, abort,
retry, dashboard, dev up|down. Errors KULTA raises on purpose are printed as one clear
line (exit 1); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kulta import __version__
from kulta.errors import KultaError
from kulta.spec.escape import one_line

if TYPE_CHECKING:
    from kulta.adapters.sinks import SinkMode
    from kulta.model.analysis import AnalysisTemplate

__all__ = ["main"]

log = logging.getLogger(__name__)


def default_concurrency() -> int:
    """One update in flight per CPU core: an update is CPU-bound (~0.6 CPU-s of engine and
    provider); on 2 cores, 2 workers gave 121 steps/min at 0.75 s a step, 4 gave 96 at 2.3 s."""
    return max(1, os.cpu_count() or 1)


DASHBOARD_TOKEN_ENV = "KULTA_DASHBOARD_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_STATE_DIR = Path(os.environ.get("KULTA_STATE_DIR", ".kulta"))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _default_identity() -> str:
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def _seconds(text: str) -> float:
    """``15``, ``15s``, ``1.5s`` or ``1m``, as seconds."""
    scale = {"s": 1.0, "m": 60.0}.get(text[-1:], 0.0)
    number = text[:-1] if scale else text
    try:
        return float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write seconds like 15, 15s or 1m") from None


def _common_stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=os.environ.get("KULTA_ENV", "dev"), help="environment (stack name prefix)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="local state: file backend, workspaces")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig of the target cluster")


#: ``kulta preview --format`` (kulta.app.preview_render.OutputFormat; text first, the default)
_PREVIEW_FORMATS = ("text", "markdown", "json")
_NAMESPACE_HELP = "namespace of the documents without metadata.namespace (like kubectl apply -n; default: default)"


def _namespace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help=_NAMESPACE_HELP)


def _sink_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sink-url", help="CloudEvents HTTP sink for CDEvents")
    p.add_argument("--sink-mode", choices=["binary", "structured"], default="binary")
    p.add_argument("--sink-auth-env", help="environment variable holding the sink's Authorization header")
    p.add_argument("--events-file", type=Path, help="JSON-lines file sink for CDEvents")


def _sink_mode(args: argparse.Namespace) -> SinkMode:
    from kulta.adapters.sinks import SinkMode

    return SinkMode.STRUCTURED if args.sink_mode == "structured" else SinkMode.BINARY


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kulta", description="Progressive delivery as code")
    parser.add_argument("--version", action="version", version=f"kulta {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("KULTA_LOG_LEVEL", "WARNING"),
        help="DEBUG, INFO, WARNING (default), ERROR or CRITICAL",
    )
    parser.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check Rollout/AnalysisTemplate files; list every error")
    p.add_argument("paths", nargs="+")
    _namespace_arg(p)

    p = sub.add_parser("plan", help="print every step of a Rollout as a table")
    p.add_argument("file")
    _namespace_arg(p)

    p = sub.add_parser("preview", help="what each step's Pulumi update would change (real preview)")
    p.add_argument("file")
    _namespace_arg(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--step", type=int)
    group.add_argument("--all", action="store_true")
    p.add_argument(
        "--format",
        choices=_PREVIEW_FORMATS,
        default=_PREVIEW_FORMATS[0],
        help="text (default), markdown (a pull-request comment) or json (docs/commands.md)",
    )
    _common_stack_args(p)

    p = sub.add_parser("run", help="reconcile rollouts from Git: a loop, or one pass with --once")
    p.add_argument("--repo", required=True, help="local path, file://, https:// or ssh URL")
    p.add_argument("--branch", default="main")
    p.add_argument("--path", default=".", help="directory or glob of Rollout files in the repo")
    _namespace_arg(p)
    p.add_argument(
        "--path-namespace",
        action="append",
        default=[],
        metavar="DIR=NAMESPACE",
        help="documents without metadata.namespace in files under DIR (relative to the repository root) are in "
        "NAMESPACE; repeatable, the longest DIR wins; other files use --namespace",
    )
    p.add_argument("--once", action="store_true", help="one pass (scheduled GitOps job); exit 1 if anything failed")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between passes (loop)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=default_concurrency(),
        help="Pulumi updates in flight at once (default: one per CPU core, as measured in bench/scale.py)",
    )
    p.add_argument("--cluster", default="local", help="cluster name used in CDEvents environment ids")
    p.add_argument("--prune", action="store_true", help="destroy stacks whose Rollout left Git")
    p.add_argument("--metrics-port", type=int, help="serve /metrics on 127.0.0.1:PORT (loop mode)")
    _sink_args(p)
    p.add_argument("--token-env", help="environment variable holding an https Git token")
    p.add_argument("--ssh-key", help="private key file for an ssh:// or git@ repository")
    p.add_argument(
        "--lease-namespace",
        help="share the rollouts with other `kulta run` replicas through coordination.k8s.io Leases in this "
        "namespace (off by default: one process drives every rollout)",
    )
    p.add_argument(
        "--identity",
        default=_default_identity(),
        help="this replica's name in the leases and in each update's message (default: host name and PID)",
    )
    p.add_argument(
        "--lease-duration",
        type=_seconds,
        default=15.0,
        help="seconds (or 15s, 1m) a replica's lease lasts unrenewed; renewed every third of it (default 15s)",
    )
    _common_stack_args(p)

    p = sub.add_parser("events", help="deliver the CDEvents that `pulumi up` (the CI path) recorded in its stacks")
    p.add_argument("rollouts", nargs="*", help="name or namespace/name (default: every stack of --env)")
    _sink_args(p)
    _common_stack_args(p)

    p = sub.add_parser("status", help="all rollouts as a table, or one in detail")
    p.add_argument("rollout", nargs="?")
    p.add_argument("--file", help="Rollout file, to list its steps in the detail view")
    p.add_argument("--lease-namespace", help="show which `kulta run` replica holds each rollout (its Leases)")
    _common_stack_args(p)

    p = sub.add_parser("history", help="every update of a rollout's stack: the time-travel view")
    p.add_argument("rollout")
    _common_stack_args(p)

    for name, text in (
        ("promote", "skip the current pause/analysis (or --full: promote now)"),
        ("abort", "send all traffic back to stable and stop the canary"),
        ("retry", "restart an aborted canary from step 0"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("rollout")
        if name == "promote":
            p.add_argument("--full", action="store_true")
        _common_stack_args(p)

    p = sub.add_parser("dashboard", help="a local web page: every rollout, one rollout's steps, promote/abort/retry")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; elsewhere: token needed)")
    p.add_argument("--port", type=int, default=3100, help="port (default 3100, as Argo's dashboard; 0: any free one)")
    p.add_argument(
        "--file",
        action="append",
        default=[],
        help="Rollout/AnalysisTemplate files or directories, to show each metric's successCondition (repeatable)",
    )
    p.add_argument(
        "--token-env",
        default=DASHBOARD_TOKEN_ENV,
        help=f"environment variable holding the token (default {DASHBOARD_TOKEN_ENV}; unset: one is generated)",
    )
    _common_stack_args(p)

    p = sub.add_parser("dev", help="local cluster: control plane on kwok, Gateway API CRDs, Prometheus")
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--name", default="kulta-dev")
    return parser


def _cmd_preview(args: argparse.Namespace) -> int:
    from kulta.adapters.kube import KubeReader
    from kulta.adapters.stacks import build_stack_manager
    from kulta.app.commands import format_preview
    from kulta.app.preview import StepRole, StepSelection, preview_file
    from kulta.app.preview_render import OutputFormat, render_json, render_markdown

    output = OutputFormat(args.format)
    result = preview_file(
        args.file,
        StepSelection(all=args.all, step=args.step),
        connect=lambda: (build_stack_manager(args.state_dir, args.kubeconfig), KubeReader(args.kubeconfig)),
        environment=args.env,
        now=_now(),
        namespace=_namespace(args),
    )
    if output is not OutputFormat.TEXT:
        # an invalid file is rendered too (the PR comment says what to fix); the exit status says it failed
        sys.stdout.write((render_markdown if output is OutputFormat.MARKDOWN else render_json)(result) + "\n")
        return 0 if result.valid else 1
    if not result.valid:
        for e in result.errors:
            sys.stderr.write(one_line(str(e)) + "\n")
        sys.stderr.write(
            one_line(f"{args.file}: {'fix the errors above' if result.errors else 'no Rollout in this file'}") + "\n"
        )
        return 1
    for rollout in result.rollouts:
        if rollout.steps and rollout.steps[0].role is StepRole.FIRST_DEPLOYMENT:
            sys.stdout.write(
                "  no stack yet: the first update deploys this revision as stable (steps apply to the next one)\n"
            )
        for step in rollout.steps:
            format_preview(step.label, step.report, sys.stdout)
    return 0


def _namespace(args: argparse.Namespace) -> str:
    """``--namespace``, checked (a ConfigError names the option), else ``default``."""
    from kulta.model.rollout import DEFAULT_NAMESPACE
    from kulta.spec.namespaces import check_namespace

    return DEFAULT_NAMESPACE if args.namespace is None else check_namespace(args.namespace)


def _cmd_status(args: argparse.Namespace) -> int:
    # imports kept to what a status needs: at 50 rollouts the answer is mostly start-up
    from kulta.adapters.health_file import read_health
    from kulta.adapters.stacks import build_stack_manager
    from kulta.app.commands import format_health_lines, format_status_detail, format_status_table, read_status_rows

    stacks = build_stack_manager(args.state_dir, args.kubeconfig)
    rows = read_status_rows(stacks, args.env, args.rollout)
    health = read_health(args.state_dir)
    holders = None
    if args.lease_namespace is not None:
        from kulta.adapters.leases import LeaseApi, lease_holders
        from kulta.spec.namespaces import check_namespace

        api = LeaseApi(check_namespace(args.lease_namespace, "--lease-namespace"), args.kubeconfig, timeout=10.0)
        holders = lease_holders(api, args.env)
    if args.rollout is None:
        format_status_table(rows, sys.stdout, holders)
        format_health_lines(health, [ref.name for ref, _ in rows], sys.stdout)
        return 0
    ref, status = rows[0]
    if status is None:
        sys.stdout.write(f"{ref.namespace}/{ref.rollout}: no update yet\n")
        return 0
    rollout = None
    if args.file:
        from kulta.app.spec_commands import load_with_references

        in_file = load_with_references([args.file]).rollouts
        rollout = next((r for r in in_file if r.name == ref.rollout), None)
    format_status_detail(status, rollout, sys.stdout)
    if holders is not None:
        sys.stdout.write(f"  held by: {holders.get(ref.name) or 'no replica'}\n")
    format_health_lines(health, [ref.name], sys.stdout)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from kulta.adapters.stacks import build_stack_manager
    from kulta.app.commands import find_stacks, format_history

    stacks = build_stack_manager(args.state_dir, args.kubeconfig)
    ref = find_stacks(stacks, args.env, args.rollout)[0]
    format_history(stacks.history(ref.name), sys.stdout)
    return 0


def _cmd_manual(args: argparse.Namespace) -> int:
    from kulta.adapters.stacks import build_stack_manager
    from kulta.app.commands import request_command
    from kulta.core.commands import CommandKind

    kind = {
        "promote": CommandKind.PROMOTE_FULL if getattr(args, "full", False) else CommandKind.PROMOTE,
        "abort": CommandKind.ABORT,
        "retry": CommandKind.RETRY,
    }[args.command]
    stacks = build_stack_manager(args.state_dir, args.kubeconfig)
    ref, cmd = request_command(stacks, args.env, args.rollout, kind, _now())
    sys.stdout.write(
        f"{kind.value} requested for {ref.namespace}/{ref.rollout} (id {cmd.id[:8]}); applied on the next pass\n"
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from kulta.app.runner import RunOptions, run
    from kulta.spec.namespaces import check_namespace, parse_path_namespace

    options = RunOptions(
        repo=args.repo,
        branch=args.branch,
        path=args.path,
        namespace=_namespace(args),
        path_namespaces=tuple(parse_path_namespace(text) for text in args.path_namespace),
        once=args.once,
        interval=args.interval,
        concurrency=args.concurrency,
        environment=args.env,
        cluster=args.cluster,
        kubeconfig=args.kubeconfig,
        state_dir=args.state_dir,
        prune=args.prune,
        metrics_port=args.metrics_port,
        sink_url=args.sink_url,
        sink_mode=_sink_mode(args),
        sink_auth_env=args.sink_auth_env,
        events_file=args.events_file,
        token_env=args.token_env,
        ssh_key_path=args.ssh_key,
        lease_namespace=(
            None if args.lease_namespace is None else check_namespace(args.lease_namespace, "--lease-namespace")
        ),
        identity=args.identity,
        lease_duration=args.lease_duration,
    )
    return run(options, sys.stdout)


def _cmd_events(args: argparse.Namespace) -> int:
    from kulta.adapters.stacks import build_stack_manager
    from kulta.app.ci_events import deliver_recorded_events
    from kulta.app.commands import find_stacks
    from kulta.app.runner import build_delivery
    from kulta.errors import ConfigError

    outbox, deliverer = build_delivery(
        args.state_dir, args.sink_url, _sink_mode(args), args.sink_auth_env, args.events_file
    )
    if outbox is None or deliverer is None:
        raise ConfigError("kulta events needs a sink: --sink-url URL or --events-file FILE")
    stacks = build_stack_manager(args.state_dir, args.kubeconfig)
    if args.rollouts:
        names = [find_stacks(stacks, args.env, r)[0].name for r in args.rollouts]
    else:
        names = [ref.name for ref in find_stacks(stacks, args.env)]
    report = deliver_recorded_events(stacks, names, outbox, deliverer, _now())
    for st in report.stacks:
        if not st.found:
            state = "nothing new to send"
        elif st.acked_id:
            state = f"{st.found} event(s) delivered, acknowledged up to {st.acked_id}"
        else:
            state = f"{st.found} event(s), not all delivered: run it again"
        sys.stdout.write(f"{st.stack}: {state}\n")
    if report.delivery is not None:
        d = report.delivery
        sys.stdout.write(f"events: {d.sent} sent, {d.failed} failed, {d.pending} pending\n")
    return 0 if report.complete else 1


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import secrets
    import threading

    from kulta.adapters.dashboard_server import DashboardServer, is_loopback
    from kulta.adapters.stacks import build_stack_manager
    from kulta.app.dashboard import DashboardApp
    from kulta.app.spec_commands import load_with_references

    templates: tuple[AnalysisTemplate, ...] = ()
    if args.file:
        loaded = load_with_references(args.file)
        for e in loaded.errors:  # the page still works; those conditions are just not shown
            sys.stderr.write(one_line(f"warning: {e}") + "\n")
        templates = loaded.templates
    token = os.environ.get(args.token_env, "") or secrets.token_urlsafe(24)
    stacks = build_stack_manager(args.state_dir, args.kubeconfig)
    app = DashboardApp(stacks, args.env, args.state_dir, token, templates)
    server = DashboardServer(args.host, args.port, token, app)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{server.port}/"
    if not is_loopback(args.host):
        # printed once, here: the token never reaches a log or a file
        url += "?token=" + (token if args.token_env not in os.environ else f"${args.token_env}")
    sys.stdout.write(f"dashboard for environment {args.env}: {url}  (Ctrl-C stops it)\n")
    sys.stdout.flush()
    server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sys.stdout.write("dashboard stopped\n")
    finally:
        server.close()
    return 0


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _cmd_dev(args: argparse.Namespace) -> int:
    from kulta.devcluster import cluster_down, cluster_up

    if args.action == "up":
        cluster = cluster_up(args.name, progress=_print_line)
        sys.stdout.write(f"export KUBECONFIG={cluster.kubeconfig}\n# Prometheus: {cluster.prometheus_url}\n")
        return 0
    stopped = cluster_down(args.name)
    sys.stdout.write(f"cluster {args.name} {'stopped' if stopped else 'was not running'}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from kulta.logging_setup import configure_logging

    try:
        configure_logging(level=args.log_level, json=args.log_json, stream=sys.stderr)
        if args.command == "validate":
            from kulta.app.spec_commands import validate_command

            return validate_command(args.paths, sys.stdout, namespace=_namespace(args))
        if args.command == "plan":
            from kulta.app.spec_commands import plan_command

            return plan_command(args.file, sys.stdout, namespace=_namespace(args))
        handlers = {
            "preview": _cmd_preview,
            "run": _cmd_run,
            "events": _cmd_events,
            "status": _cmd_status,
            "history": _cmd_history,
            "promote": _cmd_manual,
            "abort": _cmd_manual,
            "retry": _cmd_manual,
            "dashboard": _cmd_dashboard,
            "dev": _cmd_dev,
        }
        return handlers[args.command](args)
    except KultaError as exc:
        # some messages are several lines on purpose (a Pulumi error's tail); a value quoted from the
        # repository or a dependency may hold an escape sequence: each line is written escaped
        lines = f"error: {exc}".split("\n")
        sys.stderr.write("".join(one_line(line) + "\n" for line in lines))
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
