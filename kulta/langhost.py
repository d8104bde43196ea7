"""A Python language host for the Pulumi engine, used when Pulumi's own is missing.

Why this exists: the Pulumi engine runs ``runtime: python`` projects through a
separate binary, ``pulumi-language-python``. Its Go module is not served by the
module proxy KULTA's build machines reach (see docs/toolchain.md), so the
toolchain installs this module under that plugin name instead. It speaks the
same gRPC ``LanguageRuntime`` protocol, reusing the servicer the Pulumi Python
SDK ships for Automation API inline programs, and runs the project's
``__main__.py`` in-process. A machine that has Pulumi's real language host keeps
using it; the toolchain never shadows an installed one.

Plugin protocol: the engine starts ``pulumi-language-python [flags] ENGINE_ADDR``,
reads the port this process listens on from its first stdout line, then calls
it over gRPC. When it is done, ``Plugin.Close`` calls the plugin's ``kill``
(Pulumi's ``sdk/go/common/resource/plugin/plugin.go``, v3.260.0): SIGINT first
(``cmdutil.InterruptChildren``), SIGKILL only if the process is still there 5
seconds later. SIGINT and SIGTERM are therefore the normal end of this
process: they stop the server and exit 0, instead of the ``KeyboardInterrupt``
traceback Python prints by default (which the engine copied into the output of
every preview). Any other error still propagates.
"""

from __future__ import annotations

import logging
import os
import runpy
import signal
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

__all__ = ["ProgramDirLanguageServer", "main"]

log = logging.getLogger(__name__)

MAIN_FILE = "__main__.py"
MAX_MESSAGE_BYTES = 400 * 1024 * 1024
#: Seconds in-flight calls get to finish once the engine asks this process to stop.
STOP_GRACE_SECONDS = 2.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ProgramDirLanguageServer(LanguageServer):
    """Runs ``__main__.py`` of the directory the engine names in each RunRequest."""

    def __init__(self) -> None:
        super().__init__(program=self._run_main)
        self._program_dir = os.getcwd()

    def _run_main(self) -> None:
        main_path = os.path.join(self._program_dir, MAIN_FILE)
        if self._program_dir not in sys.path:
            sys.path.insert(0, self._program_dir)
        runpy.run_path(main_path, run_name="__main__")

    def Run(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
        program_dir = request.info.program_directory or request.pwd or os.getcwd()
        self._program_dir = os.path.abspath(program_dir)
        os.chdir(request.pwd or self._program_dir)
        return super().Run(request, context)  # type: ignore[no-untyped-call]

    def InstallDependencies(self, request: Any, context: Any) -> Any:  # noqa: N802
        # Dependencies come from requirements.txt installed by the project's
        # setup; there is nothing to install per run.
        return iter(())

    def GetProgramDependencies(self, request: Any, context: Any) -> Any:  # noqa: N802
        return language_pb2.GetProgramDependenciesResponse()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, which no longer raise in the main thread."""
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()  # nothing else here: a handler may run in the middle of any main-thread call

    for signum in _STOP_SIGNALS:
        signal.signal(signum, request_stop)
    return stop


def main(argv: list[str] | None = None) -> int:
    """Serve the LanguageRuntime on a free loopback port, print the port, stop on SIGINT/SIGTERM."""
    stop = _stop_on_signals()
    args = list(sys.argv[1:] if argv is None else argv)
    positional = [a for a in args if not a.startswith("-")]
    log.debug("language host starting", extra={"engine": positional[-1] if positional else ""})
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProgramDirLanguageServer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    stop.wait()
    log.debug("language host stopping")
    server.stop(STOP_GRACE_SECONDS).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
