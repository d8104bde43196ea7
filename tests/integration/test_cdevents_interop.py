"""KULTA's CDEvents as a consumer on the official CDEvents Go SDK sees them.

The consumer (dev/cdevents-consumer, built by ``dev/toolchain``) is
github.com/cdevents/sdk-go v0.5.1 behind the CloudEvents Go SDK's HTTP
protocol: ``v05.NewFromJsonBytes`` then ``api.Validate``, as the SDK's docs
show. KULTA's real outbox, deliverer and HTTP sink send it every event of a
full and of an aborted rollout, in binary and in structured mode. The negative
test proves the oracle bites: an event whose link has no ``tags`` (what KULTA
emitted before, and what KULTA's own JSON-schema check accepts) is rejected.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kulta.adapters.cdevents_schema import validate_event
from kulta.adapters.outbox import Deliverer, DeliveryReport, Outbox
from kulta.adapters.sinks import HttpSink, SinkConfig, SinkMode
from kulta.core.events import CDEvent, EventType
from kulta.errors import TemporaryError
from tests.event_scenarios import aborted_rollout_events, full_rollout_events
from tests.integration.cdevents_consumer import GoConsumer

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
MODES = [SinkMode.BINARY, SinkMode.STRUCTURED]


@pytest.fixture
def consumer(toolchain: dict[str, str], tmp_path: Path) -> Iterator[GoConsumer]:
    """The Go consumer on a free loopback port (the toolchain fixture puts it on PATH)."""
    go = GoConsumer(tmp_path / "consumer")
    go.start()
    try:
        yield go
    finally:
        code = go.stop()
    assert code == 0, f"the consumer did not stop cleanly ({code}): {go.stderr()}"


def linked(events: list[CDEvent]) -> list[CDEvent]:
    return [e for e in events if e.body["context"].get("links")]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_every_event_of_a_full_and_an_aborted_rollout_is_accepted(
    consumer: GoConsumer, tmp_path: Path, mode: SinkMode
) -> None:
    web, api = full_rollout_events(), aborted_rollout_events()
    # 7 + 6 events; every one but the two pipelinerun.started carries a PATH link
    assert (len(web), len(api)) == (7, 6)
    assert len(linked(web + api)) == 11
    box = Outbox(tmp_path / "box")
    box.put(web, "prod/shop/web")
    box.put(api, "prod/shop/api")
    with HttpSink(SinkConfig(url=consumer.url, mode=mode)) as sink:
        report = Deliverer(box, sink).deliver_due(T0)
    assert report == DeliveryReport(sent=13, failed=0, pending=0)
    verdicts = consumer.wait_for(13)
    rejected = [(v.type, v.error) for v in verdicts if not v.accepted]
    assert rejected == []
    assert sorted(v.id for v in verdicts) == sorted(e.id for e in web + api)
    assert [v.id for v in verdicts if v.id in {e.id for e in web}] == [e.id for e in web]
    assert [v.id for v in verdicts if v.id in {e.id for e in api}] == [e.id for e in api]
    assert {v.mode for v in verdicts} == {mode.value}
    assert all(v.cdevent_id == v.id for v in verdicts)
    assert {v.type for v in verdicts} == {
        EventType.PIPELINERUN_STARTED.value,
        EventType.ROLLOUT_PROGRESSED.value,
        EventType.SERVICE_UPGRADED.value,
        EventType.INCIDENT_DETECTED.value,
        EventType.SERVICE_ROLLEDBACK.value,
        EventType.PIPELINERUN_FINISHED.value,
    }


def without_tags(ev: CDEvent) -> CDEvent:
    """``ev`` with its link as KULTA built it before: no ``tags``."""
    body = copy.deepcopy(dict(ev.body))
    for link in body["context"]["links"]:
        del link["tags"]
    return dataclasses.replace(ev, body=body)


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_a_link_without_tags_is_rejected_by_the_sdk(consumer: GoConsumer, mode: SinkMode) -> None:
    good = linked(full_rollout_events())[0]
    bad = without_tags(good)
    assert "tags" not in bad.body["context"]["links"][0]
    validate_event(bad.body)  # the spec's JSON schema alone does not catch it
    with HttpSink(SinkConfig(url=consumer.url, mode=mode)) as sink:
        with pytest.raises(TemporaryError, match="rejected with HTTP 400"):
            sink.send(bad)
        sink.send(good)
    verdicts = consumer.wait_for(2)
    assert [(v.id, v.accepted, v.mode) for v in verdicts] == [(good.id, False, mode.value), (good.id, True, mode.value)]
    assert verdicts[0].error.startswith("Validate: jsonschema validation failed")
    assert "at '/context/links/0/tags': got null, want object" in verdicts[0].error
    assert verdicts[1].error == ""
