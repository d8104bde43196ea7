"""CDEvents delivered over real HTTP: binding headers, order, outages, kill -9."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event, from_structured_event

from kulta.adapters.cdevents_schema import validate_event
from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox
from kulta.adapters.sinks import HttpSink, SinkConfig, SinkMode
from kulta.core.events import CDEvent
from kulta.errors import ConfigError
from tests.event_scenarios import aborted_rollout_events, full_rollout_events
from tests.integration.eventsink import EventReceiver, ReceivedRequest

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
TOKEN_ENV = "KULTA_TEST_SINK_TOKEN"
TOKEN = "Bearer s3cr3t-t0ken-value"


@pytest.fixture
def receiver() -> Iterator[EventReceiver]:
    with EventReceiver() as rx:
        yield rx


def ids(requests: list[ReceivedRequest]) -> list[str]:
    return [r.headers["ce-id"] for r in requests]


def by_rollout(requests: list[ReceivedRequest], rollout: str) -> list[ReceivedRequest]:
    return [r for r in requests if r.json()["customData"]["rollout"] == rollout]


def assert_binary(request: ReceivedRequest, ev: CDEvent) -> None:
    headers = request.headers
    assert headers["ce-id"] == ev.id == ev.body["context"]["id"]
    assert headers["ce-source"] == ev.body["context"]["source"]
    assert headers["ce-type"] == ev.body["context"]["type"]
    assert headers["ce-subject"] == ev.body["subject"]["id"]
    assert headers["ce-time"] == ev.body["context"]["timestamp"]
    assert headers["ce-specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert request.json() == ev.body
    validate_event(request.json())
    parsed = from_http_event(HTTPMessage(headers=headers, body=request.body))
    assert parsed.get_id() == ev.id
    assert parsed.get_data() == ev.body


def test_full_and_aborted_rollouts_arrive_in_order_with_binding_headers(
    receiver: EventReceiver, tmp_path: Path
) -> None:
    web, api = full_rollout_events(), aborted_rollout_events()
    with HttpSink(SinkConfig(url=receiver.url)) as sink:
        box = Outbox(tmp_path / "box")
        box.put(web, "prod/shop/web")
        box.put(api, "prod/shop/api")
        report = Deliverer(box, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=len(web) + len(api), failed=0, pending=0)
    got = receiver.accepted()
    assert len(got) == len(web) + len(api)
    assert ids(by_rollout(got, "web")) == [e.id for e in web]
    assert ids(by_rollout(got, "api")) == [e.id for e in api]
    for request, ev in zip(by_rollout(got, "web") + by_rollout(got, "api"), web + api, strict=True):
        assert request.path == "/events"
        assert_binary(request, ev)
    assert [r.headers["ce-type"].split(".")[2:4] for r in by_rollout(got, "api")] == [
        ["pipelinerun", "started"],
        ["kulta-rollout", "progressed"],
        ["kulta-rollout", "progressed"],
        ["incident", "detected"],
        ["service", "rolledback"],
        ["pipelinerun", "finished"],
    ]


def test_structured_mode_body_is_a_cloudevent(receiver: EventReceiver, tmp_path: Path) -> None:
    events = aborted_rollout_events()
    box = Outbox(tmp_path / "structured")
    box.put(events, "api")
    with HttpSink(SinkConfig(url=receiver.url, mode=SinkMode.STRUCTURED)) as sink:
        assert Deliverer(box, sink).deliver_due(T0).sent == len(events)
    got = receiver.accepted()
    assert len(got) == len(events)
    for request, ev in zip(got, events, strict=True):
        assert request.headers["content-type"] == "application/cloudevents+json"
        assert not [h for h in request.headers if h.startswith("ce-")]
        parsed = from_structured_event(HTTPMessage(headers=request.headers, body=request.body))
        assert parsed.get_id() == ev.id
        assert parsed.get_type() == ev.type.value
        assert parsed.get_source() == ev.source
        assert parsed.get_subject() == ev.subject_id
        assert parsed.get_datacontenttype() == "application/json"
        assert parsed.get_data() == ev.body
        assert request.json()["time"] == ev.timestamp


def test_sink_answering_500_delays_but_loses_nothing(
    receiver: EventReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    web, api = full_rollout_events(), aborted_rollout_events()
    box = Outbox(tmp_path / "box")
    box.put(web, "web")
    box.put(api, "api")
    receiver.status = 500
    now = T0
    config = SinkConfig(url=receiver.url, auth_header_env=TOKEN_ENV, timeout_seconds=2.0)
    with caplog.at_level(logging.DEBUG), HttpSink(config) as sink:
        deliverer = Deliverer(box, sink, base_delay=1.0, max_delay=8.0)
        for _ in range(4):
            report = deliverer.deliver_due(now)
            assert report.sent == 0
            assert report.failed == 2, "each rollout's head is tried once per due pass"
            assert report.pending == len(web) + len(api)
            now += timedelta(seconds=10)
        receiver.status = 200
        report = deliverer.deliver_due(now)
    assert report == DeliveryReport(sent=len(web) + len(api), failed=0, pending=0)
    accepted = receiver.accepted()
    assert ids(by_rollout(accepted, "web")) == [e.id for e in web]
    assert ids(by_rollout(accepted, "api")) == [e.id for e in api]
    assert len(set(ids(accepted))) == len(accepted), "each id accepted exactly once"
    assert {r.headers["authorization"] for r in receiver.requests()} == {TOKEN}
    assert TOKEN not in caplog.text
    assert "HTTP 500" in caplog.text


def test_closed_port_then_restart_on_the_same_port(receiver: EventReceiver, tmp_path: Path) -> None:
    events = full_rollout_events()
    box = Outbox(tmp_path / "box")
    box.put(events, "web")
    port = receiver.port
    with HttpSink(SinkConfig(url=receiver.url, timeout_seconds=2.0)) as sink:
        deliverer = Deliverer(box, sink, base_delay=1.0, max_delay=4.0)
        receiver.stop()
        now = T0
        for _ in range(3):
            report = deliverer.deliver_due(now)
            assert report == DeliveryReport(sent=0, failed=1, pending=len(events))
            now += timedelta(seconds=5)
        receiver.start()
        assert receiver.port == port
        report = deliverer.deliver_due(now)
    assert report == DeliveryReport(sent=len(events), failed=0, pending=0)
    assert ids(receiver.accepted()) == [e.id for e in events]


def test_outage_in_the_middle_resumes_at_the_first_undelivered_event(receiver: EventReceiver, tmp_path: Path) -> None:
    events = full_rollout_events()
    box = Outbox(tmp_path / "box")
    with HttpSink(SinkConfig(url=receiver.url, timeout_seconds=2.0)) as sink:
        deliverer = Deliverer(box, sink, base_delay=1.0, max_delay=4.0)
        box.put(events[:3], "web")
        assert deliverer.deliver_due(T0).sent == 3
        receiver.stop()
        box.put(events, "web")  # the reconciler replays everything it derived: only new ids are stored
        assert box.pending("web") == events[3:]
        assert deliverer.deliver_due(T0).failed == 1
        receiver.start()
        assert deliverer.deliver_due(T0 + timedelta(seconds=5)).sent == len(events) - 3
    assert ids(receiver.accepted()) == [e.id for e in events]


def test_missing_auth_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        HttpSink(SinkConfig(url="http://127.0.0.1:9/", auth_header_env=TOKEN_ENV))


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from kulta.adapters.outbox import Deliverer, Outbox
    from kulta.adapters.sinks import HttpSink, SinkConfig
    from tests.event_scenarios import full_rollout, replay, stable_a

    events = [e for batch in replay(full_rollout(), stable_a()) for e in batch]
    outbox = Outbox(Path(sys.argv[1]))
    outbox.put(events, "prod/shop/web")
    sink = HttpSink(SinkConfig(url=sys.argv[2]))
    print("\\n".join(e.id for e in events), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # dies after the outbox write, before any send
    Deliverer(outbox, sink).deliver_due(None)
    """
)


def test_kill_9_between_outbox_write_and_send(receiver: EventReceiver, tmp_path: Path) -> None:
    box_dir = tmp_path / "box"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(box_dir), receiver.url],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    child_ids = child.stdout.split()
    assert receiver.requests() == [], "nothing was sent before the kill"

    events = full_rollout_events()
    assert child_ids == [e.id for e in events], "ids are derived deterministically"
    box = Outbox(box_dir)
    assert box.pending() == events
    # The restarted reconciler replays its last derivation: nothing is stored twice.
    assert box.put(events, "prod/shop/web") == 0
    with HttpSink(SinkConfig(url=receiver.url)) as sink:
        report = Deliverer(box, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=len(events), failed=0, pending=0)
    assert ids(receiver.accepted()) == child_ids
    for request, ev in zip(receiver.accepted(), events, strict=True):
        assert_binary(request, ev)
