"""How long ``kulta.redact.redact_text`` takes on adversarial input.

Why: every log line, error and stored message goes through the redactor. A
redactor whose regular expressions backtrack turns a long error body (a
Prometheus answer, a git stderr) into minutes of CPU inside a log call, which
stops the reconcile loop. The redactor must be linear: this script prints the
time per input so a regression is visible.

Each case runs in its own child process with a time limit (a regular
expression stuck in C code cannot be interrupted from Python), so a quadratic
redactor is reported as "> limit" instead of hanging the benchmark.

    python bench/redact_speed.py                 # 1 MB per case, 60 s limit
    python bench/redact_speed.py --size 16384 --limit 30
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: name -> the unit repeated to build the input (cut to the requested size)
CASES: dict[str, str] = {
    "a.a.a.": "a.",
    "a-a-a-": "a-",
    "user: repeated": "user:",
    "= repeated": "=",
    "token= repeated": "token=",
    "token=[ repeated": "token=[ ",
    "nested quotes": "\"'",
    'password: " unclosed': 'password: "',
    "password: '\\ unclosed": "password: '\\",
    "authorization: repeated": "authorization: ",
    "cookie: repeated": "cookie: ",
    "x:// repeated": "x://",
    "x://a@ repeated": "x://a@",
    "https://a/ repeated": "https://a/",
    "-----BEGIN PRIVATE KEY----- repeated": "-----BEGIN PRIVATE KEY-----",
    "Bearer repeated": "Bearer ",
    "sig= repeated": "sig=",
    "letters, no spaces": "abcdefghij",
}


def _build(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _child(unit: str, size: int, queue: multiprocessing.Queue[float]) -> None:
    from kulta.redact import redact_text  # noqa: PLC0415 (imported in the child, after the sys.path set-up)

    text = _build(unit, size)
    started = time.perf_counter()
    redact_text(text, secrets=["Bearer s3cr3t-value"])
    queue.put(time.perf_counter() - started)


def _time_case(unit: str, size: int, limit: float) -> float | None:
    queue: multiprocessing.Queue[float] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_child, args=(unit, size, queue))
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None
    return queue.get(timeout=5)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="characters per input (default 1 MB)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds before a case is given up")
    args = parser.parse_args(argv)
    out(f"redact_text on {args.size} characters per case (limit {args.limit:.0f} s)")
    worst = 0.0
    for name, unit in CASES.items():
        seconds = _time_case(unit, args.size, args.limit)
        if seconds is None:
            out(f"  {name:<40} > {args.limit:.0f} s (gave up)")
            worst = float("inf")
            continue
        worst = max(worst, seconds)
        out(f"  {name:<40} {seconds * 1000:9.1f} ms")
    out(f"worst: {'> limit' if worst == float('inf') else f'{worst * 1000:.1f} ms'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
