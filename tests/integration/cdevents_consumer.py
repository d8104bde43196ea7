"""The CDEvents Go SDK consumer (dev/cdevents-consumer) as a test fixture.

``dev/toolchain cdevents-consumer`` builds it into the cached toolchain, which
``dev/env`` puts on PATH. It listens on a free loopback port, receives
CloudEvents with the CloudEvents Go SDK's HTTP protocol, parses each event with
``v05.NewFromJsonBytes`` and checks it with ``api.Validate`` of
github.com/cdevents/sdk-go, answers 200 or 400, and writes one JSON verdict per
event on stdout, which this wrapper collects.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.integration.promserver import wait_until

__all__ = ["CONSUMER_BINARY", "GoConsumer", "Verdict"]

CONSUMER_BINARY = "kulta-cdevents-consumer"
_START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Verdict:
    """What the Go consumer made of one event."""

    id: str
    cdevent_id: str
    type: str
    mode: str
    accepted: bool
    error: str


def _binary() -> str:
    found = shutil.which(CONSUMER_BINARY)
    if found is None:
        raise AssertionError(
            f"{CONSUMER_BINARY} is not on PATH: build it with `dev/toolchain cdevents-consumer` and `source dev/env`"
        )
    return found


class GoConsumer:
    """Runs the consumer; ``verdicts()`` lists what it answered, in arrival order."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._lock = threading.Lock()
        self._verdicts: list[Verdict] = []
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.address = ""

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    def verdicts(self) -> list[Verdict]:
        with self._lock:
            return list(self._verdicts)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Verdict]:
        """The verdicts once ``count`` have arrived (the HTTP answer may precede the stdout line)."""
        wait_until(lambda: len(self.verdicts()) >= count, timeout, f"{count} consumer verdicts")
        return self.verdicts()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            raw = json.loads(line)
            if "listening" in raw:
                self.address = raw["listening"]
                continue
            verdict = Verdict(
                id=raw["id"],
                cdevent_id=raw["cdeventId"],
                type=raw["type"],
                mode=raw["mode"],
                accepted=raw["accepted"],
                error=raw["error"],
            )
            with self._lock:
                self._verdicts.append(verdict)

    def start(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [_binary(), "-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=(self._log_dir / "consumer.stderr").open("w"),
            text=True,
        )
        self._process = process
        self._reader = threading.Thread(target=self._read, args=(process,), name="cdevents-consumer", daemon=True)
        self._reader.start()
        wait_until(lambda: bool(self.address) or process.poll() is not None, _START_TIMEOUT, "consumer port")
        if not self.address:
            raise AssertionError(f"{CONSUMER_BINARY} exited with {process.poll()}: {self.stderr()}")

    def stderr(self) -> str:
        return (self._log_dir / "consumer.stderr").read_text()

    def stop(self) -> int:
        """Stop it with SIGTERM; its exit code (0 when it shut down cleanly)."""
        if self._process is None:
            return 0
        self._process.terminate()
        code = self._process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._process = None
        return code

    def __enter__(self) -> GoConsumer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
