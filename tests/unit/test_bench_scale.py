"""bench/scale.py's pure helpers and its pulumi shim, on worked examples.

The benchmark's figures are only as good as these: the shim's log line, the
update message KULTA writes, /proc parsing and the goal arithmetic.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import pytest

from bench.scale import (
    SHIM,
    Goal,
    UpdateMessage,
    descendants,
    first_canary_goal,
    parse_bash_times,
    parse_proc_stat,
    parse_shim_line,
    parse_sizes,
    parse_update_message,
    pause_overruns,
    percentile,
    process_table,
    status_field_kb,
)


# -- percentile: the nearest-rank worked example of the "Percentile" article -------------
@pytest.mark.parametrize(("q", "expected"), [(5, 15), (30, 20), (40, 20), (50, 35), (100, 50)])
def test_nearest_rank_percentile(q, expected):
    assert percentile([15, 20, 35, 40, 50], q) == expected


def test_p95_of_twenty_values_is_the_nineteenth():
    assert percentile(list(range(20, 0, -1)), 95) == 19


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


# -- bash `times` and the shim ---------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [("0m0.000s", 0.0), ("0m1.250s", 1.25), ("2m3.500s", 123.5)])
def test_bash_times_fields(text, seconds):
    assert parse_bash_times(text) == seconds


def test_a_bash_times_field_with_a_decimal_comma():
    assert parse_bash_times("0m0,750s") == 0.75


def test_not_a_times_field_is_refused():
    with pytest.raises(ValueError, match="times"):
        parse_bash_times("1.5")


def test_a_logged_line_from_a_real_run():
    line = (
        "1796139998.509847\t1796139999.608836\t0\t0m0.421s\t0m0.121s\tup\tbench.ns.web-000\t"
        "kulta step=0/4 canary=25% phase=Progressing commit=836f05eece1e :: new revision 65945f6549\n"
    )
    proc = parse_shim_line(line)
    assert (proc.start, proc.end, proc.code) == (1796139998.509847, 1796139999.608836, 0)
    assert proc.cpu == pytest.approx(0.542)
    assert proc.seconds == pytest.approx(1.098989)
    assert (proc.command, proc.stack) == ("up", "bench.ns.web-000")
    assert proc.message.endswith("new revision 65945f6549")


def run_shim(tmp_path: Path, exit_code: int, *args: str) -> str:
    real = tmp_path / "real-pulumi"
    real.write_text(f"#!/usr/bin/env bash\necho engine output\nexit {exit_code}\n")
    real.chmod(0o755)
    log = tmp_path / "calls.tsv"
    shim = tmp_path / "pulumi"
    shim.write_text(SHIM.format(real=real, log=log))
    shim.chmod(0o755)
    done = subprocess.run([str(shim), *args], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == exit_code
    assert done.stdout == "engine output\n"  # the real command's output passes through
    return log.read_text()


def test_the_shim_logs_command_stack_and_message_as_the_automation_api_calls_it(tmp_path):
    before = time.time()
    text = run_shim(
        tmp_path,
        0,
        "--non-interactive",
        "up",
        "--yes",
        "--message",
        "kulta step=1/4\tcanary=25%\nsecond line",
        "--stack",
        "bench.ns.web-001",
    )
    (line,) = text.splitlines()
    proc = parse_shim_line(line)
    assert proc.command == "up"
    assert proc.stack == "bench.ns.web-001"
    assert proc.message == "kulta step=1/4 canary=25% second line"  # tab and newline flattened
    assert proc.code == 0
    assert before <= proc.start <= proc.end <= time.time()
    assert not list(tmp_path.glob("calls.tsv.times.*"))


def test_the_shim_names_stack_subcommands_and_keeps_the_exit_code(tmp_path):
    text = run_shim(tmp_path, 6, "--non-interactive", "stack", "select", "--stack", "bench.ns.web-002")
    proc = parse_shim_line(text.splitlines()[0])
    assert (proc.command, proc.stack, proc.code, proc.message) == ("stack select", "bench.ns.web-002", 6, "")


# -- KULTA's update message (kulta/app/reconciler.py `_update_message`) -----------------
def test_update_message_of_a_step():
    text = "kulta step=2/4 canary=50% phase=Progressing commit=836f05eece1e :: step 1 done (paused 5s); applying step 2"
    assert parse_update_message(text) == UpdateMessage(2, 4, "Progressing", "836f05eece1e")


def test_update_message_of_a_promotion_without_a_commit():
    text = "kulta step=4/4 canary=0% phase=Healthy commit=- :: all 4 steps done: promoted 65945f6549"
    assert parse_update_message(text) == UpdateMessage(4, 4, "Healthy", "-")


def test_an_update_by_someone_else_is_not_a_kulta_step():
    assert parse_update_message("manual fix by ops") is None


# -- /proc ------------------------------------------------------------------------------
def test_proc_stat_with_a_command_name_holding_spaces_and_parentheses():
    line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 4 0 12345 0 0"
    assert parse_proc_stat(line, 100) == (3.0, 0.5)


def test_proc_stat_of_this_process_agrees_with_os_times():
    for _ in range(200_000):  # burn a little CPU so the figure is not zero
        pass
    with open(f"/proc/{os.getpid()}/stat") as f:
        own, _children = parse_proc_stat(f.read(), os.sysconf("SC_CLK_TCK"))
    t = os.times()
    assert own == pytest.approx(t.user + t.system, abs=0.05)


def test_status_fields_in_kilobytes():
    text = "Name:\tpython\nVmPeak:\t  400000 kB\nVmHWM:\t  131072 kB\nVmRSS:\t  120000 kB\n"
    assert status_field_kb(text, "VmHWM") == 131072
    assert status_field_kb(text, "VmRSS") == 120000
    with pytest.raises(KeyError):
        status_field_kb(text, "VmSwap")


def test_descendants_of_a_process_tree():
    parents = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert descendants(10, parents) == {11, 12, 13}
    assert descendants(21, parents) == set()


def test_a_real_child_is_found_below_this_process():
    child = subprocess.Popen(["sleep", "30"])
    try:
        table = process_table()
        assert table[os.getpid()][0] == os.getppid()
        assert table[child.pid] == (os.getpid(), "sleep")
        assert child.pid in descendants(os.getpid(), {pid: ppid for pid, (ppid, _) in table.items()})
    finally:
        child.kill()
        child.wait(timeout=10)


# -- the figures against the goals ------------------------------------------------------
def test_pause_overrun_is_next_step_applied_minus_pause_start_minus_the_pause():
    started = {("s", 1): 100.0, ("s", 3): 120.0, ("t", 1): 100.0}
    applied = {("s", 2): 106.5, ("s", 4): 125.0}
    assert pause_overruns(started, applied, 5) == {("s", 1): 1.5, ("s", 3): 0.0}


@pytest.mark.parametrize(
    ("interval", "rollouts", "latency", "workers", "goal"),
    [
        (2.0, 50, 1.0, 4, 14.5),  # issue 12: interval + 50 x step latency / workers
        (2.0, 1, 0.7, 4, 2.7),  # one rollout alone: one whole step
        (2.0, 3, 1.5, 4, 3.5),  # three rollouts keep three workers busy
    ],
)
def test_first_canary_goal(interval, rollouts, latency, workers, goal):
    assert first_canary_goal(interval, rollouts, latency, workers) == pytest.approx(goal)


def test_a_goal_met_exactly_and_one_missed():
    assert Goal("status", 2.0, 2.0, " s").verdict() == "met"
    missed = Goal("status", 3.0, 2.0, " s")
    assert not missed.met
    assert missed.verdict() == "MISSED by 1.0 s, 1.5x"
    assert Goal("processes at rest", 2, 0, "").verdict() == "MISSED by 2.0"


def test_sizes_option():
    assert parse_sizes("1,10,50") == [1, 10, 50]
    for bad in ("a,b", "0", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_sizes(bad)


def test_goal_limits_are_printed_without_spurious_decimals():
    assert Goal("all Healthy", 20.0, 190.0, " s").limit_text == "<= 190 s"
    assert Goal("first canary", 2.0, 2.6937, " s").limit_text == "<= 2.69 s"
    assert Goal("processes at rest", 0, 0, "").limit_text == "<= 0"
