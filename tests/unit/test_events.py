"""build_events: the CDEvents a sequence of rollout statuses tells."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kulta.adapters.cdevents_schema import validate_event
from kulta.core.events import (
    CDEVENTS_SPEC_VERSION,
    CDEvent,
    EndReason,
    EventBuildError,
    EventContext,
    EventType,
    Outcome,
    build_events,
    chain_id_for,
    event_id_for,
    last_event_id,
    record_events,
)
from kulta.model.status import AnalysisPhase, AnalysisRunStatus, Phase
from tests.event_scenarios import (
    REV_A,
    REV_B,
    REV_C,
    Step,
    aborted_by_analysis,
    context,
    first_deploy,
    full_rollout,
    manual_abort,
    replay,
    stable_a,
    superseded,
)

T = EventType

SCENARIOS: dict[str, tuple[list[Step], bool]] = {
    "full_rollout": (full_rollout(), True),
    "aborted_by_analysis": (aborted_by_analysis(), True),
    "manual_abort": (manual_abort(), True),
    "superseded": (superseded(), True),
    "first_deploy": (first_deploy(), False),
}


def run(name: str) -> list[list[CDEvent]]:
    steps, from_stable = SCENARIOS[name]
    return replay(steps, stable_a() if from_stable else None)


def types(batches: Sequence[Sequence[CDEvent]]) -> list[list[EventType]]:
    return [[e.type for e in batch] for batch in batches]


def flat(batches: Sequence[Sequence[CDEvent]]) -> list[CDEvent]:
    return [e for batch in batches for e in batch]


def path_links(ev: CDEvent) -> list[str]:
    return [link["from"]["contextId"] for link in ev.body["context"].get("links", []) if link["linkType"] == "PATH"]


EXPECTED_TYPES = {
    "full_rollout": [
        [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED],
        [T.ROLLOUT_PROGRESSED],
        [T.ROLLOUT_PROGRESSED],
        [T.ROLLOUT_PROGRESSED],
        [T.SERVICE_UPGRADED, T.PIPELINERUN_FINISHED],
    ],
    "aborted_by_analysis": [
        [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED],
        [T.ROLLOUT_PROGRESSED],
        [T.INCIDENT_DETECTED, T.SERVICE_ROLLEDBACK, T.PIPELINERUN_FINISHED],
    ],
    "manual_abort": [
        [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED],
        [T.ROLLOUT_PROGRESSED],
        [T.SERVICE_ROLLEDBACK, T.PIPELINERUN_FINISHED],
    ],
    "superseded": [
        [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED],
        [T.ROLLOUT_PROGRESSED],
        [T.PIPELINERUN_FINISHED, T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED],
    ],
    "first_deploy": [[T.PIPELINERUN_STARTED, T.SERVICE_DEPLOYED, T.PIPELINERUN_FINISHED]],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_produces_exactly_the_expected_type_sequence(name: str) -> None:
    assert types(run(name)) == EXPECTED_TYPES[name]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_event_of_every_scenario_is_schema_valid(name: str) -> None:
    events = flat(run(name))
    assert events
    for ev in events:
        validate_event(ev.body)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_events_are_chained_by_path_links_within_their_chain(name: str) -> None:
    last_in_chain: dict[str, str] = {}
    for ev in flat(run(name)):
        links = path_links(ev)
        if ev.type is T.PIPELINERUN_STARTED:
            assert links == [], "a run's first event starts its chain"
        else:
            assert links == [last_in_chain[ev.chain_id]]
        last_in_chain[ev.chain_id] = ev.id


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_link_carries_an_empty_tags_object(name: str) -> None:
    """The CDEvents Go SDK rejects a link without ``tags`` (tests/integration/test_cdevents_interop.py)."""
    links = [link for ev in flat(run(name)) for link in ev.body["context"].get("links", [])]
    assert links
    for link in links:
        assert link == {"linkType": "PATH", "from": {"contextId": link["from"]["contextId"]}, "tags": {}}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_rebuilding_gives_the_same_ids_and_bodies(name: str) -> None:
    first, second = run(name), run(name)
    assert [[e.id for e in b] for b in first] == [[e.id for e in b] for b in second]
    assert flat(first) == flat(second)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ids_are_unique_within_a_scenario(name: str) -> None:
    ids = [e.id for e in flat(run(name))]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_context_mirrors_the_cloudevent_attributes(name: str) -> None:
    for ev in flat(run(name)):
        ctx = ev.body["context"]
        assert ctx["id"] == ev.id
        assert ctx["type"] == ev.type.value
        assert ctx["source"] == ev.source == "/kulta/prod-eu1"
        assert ctx["timestamp"] == ev.timestamp
        assert ctx["specversion"] == CDEVENTS_SPEC_VERSION
        assert ev.body["subject"]["id"] == ev.subject_id


def test_full_rollout_shares_one_chain_derived_from_the_revision() -> None:
    events = flat(run("full_rollout"))
    assert {e.chain_id for e in events} == {chain_id_for("prod", "shop", "web", REV_B)}


def test_full_rollout_content() -> None:
    batches = run("full_rollout")
    started, progressed = batches[0]
    assert started.body["subject"]["content"] == {
        "pipelineName": "web",
        "uri": "https://kulta.example.com/rollouts/shop/web",
    }
    content = progressed.body["subject"]["content"]
    assert content["stepIndex"] == 0
    assert content["stepCount"] == 3
    assert content["weights"] == [{"route": "web", "namespace": "shop", "stable": 80, "canary": 20}]
    assert content["replicas"] == {REV_A: 4, REV_B: 1}
    upgraded, finished = batches[-1]
    assert upgraded.body["subject"]["content"] == {
        "environment": {"id": "prod-eu1/shop"},
        "artifactId": "pkg:oci/web?repository_url=registry.local/team/web&tag=v2",
    }
    assert finished.body["subject"]["content"]["outcome"] == "success"
    custom = finished.body["customData"]
    assert custom["rollout"] == "web"
    assert custom["namespace"] == "shop"
    assert custom["environment"] == "prod"
    assert custom["revision"] == REV_B
    assert custom["gitCommit"] == "2222222"
    assert custom["endReason"] == "Promoted"


def test_first_event_links_from_the_previous_last_event_id() -> None:
    steps = full_rollout()
    batches = replay(steps[:1], stable_a())
    prev = record_events(steps[0][0], batches[0])
    new = steps[1][0].with_changes(chain_id=prev.chain_id, last_event_id=prev.last_event_id)
    (ev,) = build_events(prev, new, steps[1][1])
    assert path_links(ev) == [batches[0][-1].id]


def test_analysis_abort_names_the_incident_and_rolls_back_to_the_stable_image() -> None:
    incident, rolledback, finished = run("aborted_by_analysis")[-1]
    content = incident.body["subject"]["content"]
    assert "web-b-1-success-rate" in content["description"]
    assert "0.91 < 0.99" in content["description"]
    assert content["environment"] == {"id": "prod-eu1/shop"}
    assert content["service"] == {"id": "shop/web"}
    assert incident.body["customData"]["analysisRun"] == "web-b-1-success-rate"
    assert rolledback.body["subject"]["content"]["artifactId"] == (
        "pkg:oci/web?repository_url=registry.local/team/web&tag=v1"
    )
    assert finished.body["subject"]["content"]["outcome"] == "failure"
    assert finished.body["subject"]["content"]["errors"] == "analysis web-b-1-success-rate failed"
    assert finished.body["customData"]["endReason"] == "AnalysisFailed"


def test_superseded_run_is_cancelled_in_its_own_chain_and_the_new_run_starts_a_new_one() -> None:
    finished, started, progressed = run("superseded")[-1]
    assert finished.chain_id == chain_id_for("prod", "shop", "web", REV_B)
    assert finished.body["subject"]["content"]["outcome"] == "cancel"
    assert finished.body["customData"]["endReason"] == "Superseded"
    assert finished.body["subject"]["content"]["errors"] == f"superseded by revision {REV_C}"
    assert started.chain_id == progressed.chain_id == chain_id_for("prod", "shop", "web", REV_C)


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        (EndReason.PROMOTED, Outcome.SUCCESS),
        (EndReason.ANALYSIS_FAILED, Outcome.FAILURE),
        (EndReason.PROGRESS_DEADLINE, Outcome.FAILURE),
        (EndReason.MANUAL_ABORT, Outcome.CANCEL),
        (EndReason.SUPERSEDED, Outcome.CANCEL),
    ],
)
def test_end_reason_outcome(reason: EndReason, outcome: Outcome) -> None:
    assert reason.outcome is outcome


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        (EndReason.PROGRESS_DEADLINE, "failure"),
        (EndReason.MANUAL_ABORT, "cancel"),
        (EndReason.ANALYSIS_FAILED, "failure"),
    ],
)
def test_abort_outcome_follows_the_context_reason(reason: EndReason, outcome: str) -> None:
    steps = manual_abort()
    steps[-1] = (steps[-1][0], context(reason))
    finished = replay(steps, stable_a())[-1][-1]
    assert finished.type is T.PIPELINERUN_FINISHED
    assert finished.body["subject"]["content"]["outcome"] == outcome
    assert finished.body["customData"]["endReason"] == reason.value


def test_abort_without_a_reason_infers_analysis_failure_from_the_failed_run() -> None:
    steps = aborted_by_analysis()
    steps[-1] = (steps[-1][0], context(None))
    finished = replay(steps, stable_a())[-1][-1]
    assert finished.body["customData"]["endReason"] == "AnalysisFailed"
    assert finished.body["subject"]["content"]["outcome"] == "failure"


def test_unchanged_status_emits_nothing() -> None:
    for steps, start in ((full_rollout(), stable_a()), (aborted_by_analysis(), stable_a())):
        batches = replay(steps, start)
        last = record_events(steps[-1][0], batches[-1])
        assert build_events(last, last, context(now="2026-11-25T16:00:00Z")) == []


def test_a_failed_analysis_is_reported_once() -> None:
    failed = AnalysisRunStatus(name="bg", phase=AnalysisPhase.ERROR, message="prometheus unreachable")
    prev = stable_a()
    new = prev.with_changes(analysis_runs=(failed,))
    (incident,) = build_events(prev, new, context())
    assert incident.type is T.INCIDENT_DETECTED
    validate_event(incident.body)
    assert build_events(new, new, context()) == []


def test_retry_after_abort_starts_a_new_run_with_new_ids() -> None:
    steps = manual_abort()
    batches = replay(steps, stable_a())
    aborted = record_events(steps[-1][0], batches[-1])
    retried = aborted.with_changes(
        phase=Phase.PROGRESSING,
        aborted=False,
        current_step_index=0,
        rollout_started_at="2026-11-25T17:00:00Z",
    )
    events = build_events(aborted, retried, context(now="2026-11-25T17:00:00Z"))
    assert [e.type for e in events] == [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED]
    assert events[0].id not in {e.id for e in flat(batches)}


def test_first_revision_rolled_out_with_steps_is_deployed_not_upgraded() -> None:
    progressing = stable_a().with_changes(
        phase=Phase.PROGRESSING,
        stable_revision="",
        canary_revision=REV_A,
        current_step_index=2,
        deployed_once=False,
        rollout_started_at="2026-11-25T12:00:00Z",
    )
    promoted = stable_a().with_changes(deployed_once=True, rollout_started_at="2026-11-25T12:00:00Z")
    events = build_events(progressing, promoted, context())
    assert [e.type for e in events] == [T.SERVICE_DEPLOYED, T.PIPELINERUN_FINISHED]


def test_digest_images_become_purls_with_the_digest() -> None:
    started_c = superseded()[-1][0]
    promoted = started_c.with_changes(stable_revision=REV_C, phase=Phase.HEALTHY)
    events = build_events(started_c, promoted, context())
    upgraded = events[0]
    assert upgraded.type is T.SERVICE_UPGRADED
    assert upgraded.body["subject"]["content"]["artifactId"] == (
        "pkg:oci/web@sha256%3A" + "ab" * 32 + "?repository_url=registry.local/team/web"
    )


def test_stable_images_from_the_context_when_the_status_has_no_template() -> None:
    steps = manual_abort()
    aborted = steps[-1][0].with_changes(templates={})
    ctx = EventContext(
        source="/kulta/prod-eu1",
        uri="https://kulta.example.com/rollouts/shop/web",
        environment_id="",
        cluster="prod-eu1",
        end_reason=EndReason.MANUAL_ABORT,
        now="2026-11-25T14:05:00Z",
        stable_images=("nginx:1.27",),
    )
    rolledback, _ = build_events(steps[-2][0], aborted, ctx)
    content = rolledback.body["subject"]["content"]
    assert content["artifactId"] == "pkg:oci/nginx?repository_url=docker.io/library/nginx&tag=1.27"
    assert content["environment"] == {"id": "prod-eu1/shop"}


def test_timestamp_comes_from_now_then_from_the_step_start() -> None:
    prev, (new, _) = stable_a(), full_rollout()[0]
    with_now = build_events(prev, new, context(now="2026-11-25T14:00:30Z"))
    assert {e.timestamp for e in with_now} == {"2026-11-25T14:00:30Z"}
    without_now = build_events(prev, new, context(now=""))
    assert {e.timestamp for e in without_now} == {new.step_started_at}


def test_no_time_at_all_is_a_typed_error() -> None:
    prev, (new, _) = stable_a(), full_rollout()[0]
    with pytest.raises(EventBuildError, match=r"EventContext\.now"):
        build_events(prev, new.with_changes(step_started_at="", rollout_started_at=""), context(now=""))


def test_event_id_is_uuid5_over_its_inputs() -> None:
    base = {"step": "1", "predicate": "pipelinerun.started"}
    one = event_id_for("prod", "shop", "web", REV_B, **base)
    assert one == event_id_for("prod", "shop", "web", REV_B, **base)
    assert one != event_id_for("staging", "shop", "web", REV_B, **base)
    assert one != event_id_for("prod", "shop", "web", REV_C, **base)
    assert one != event_id_for("prod", "shop", "web", REV_B, step="2", predicate="pipelinerun.started")
    assert one != event_id_for("prod", "shop", "web", REV_B, step="1", predicate="pipelinerun.finished")


def test_chain_id_is_deterministic_and_distinct_per_revision() -> None:
    assert chain_id_for("prod", "shop", "web", REV_B) == chain_id_for("prod", "shop", "web", REV_B)
    assert chain_id_for("prod", "shop", "web", REV_B) != chain_id_for("prod", "shop", "web", REV_C)
    assert chain_id_for("prod", "shop", "web", REV_B) != chain_id_for("prod", "shop", "api", REV_B)


def test_last_event_id_and_record_events() -> None:
    batch = run("full_rollout")[0]
    assert last_event_id("old", batch) == batch[-1].id
    assert last_event_id("old", []) == "old"
    recorded = record_events(full_rollout()[0][0], batch)
    assert recorded.last_event_id == batch[-1].id
    assert recorded.chain_id == chain_id_for("prod", "shop", "web", REV_B)


def test_event_round_trips_through_json_dict() -> None:
    for ev in flat(run("aborted_by_analysis")):
        assert CDEvent.from_json_dict(ev.to_json_dict()) == ev


@pytest.mark.parametrize("event_type", list(EventType))
def test_event_type_values_are_versioned_cdevents_types(event_type: EventType) -> None:
    parts = event_type.value.split(".")
    assert parts[0] == "dev"
    assert parts[1] in ("cdevents", "cdeventsx")
    assert len(parts) == 7
    assert event_type.predicate == f"{parts[2]}.{parts[3]}"


def test_an_abort_is_never_reported_as_success() -> None:
    steps = manual_abort()
    steps[-1] = (steps[-1][0], context(EndReason.PROMOTED))
    finished = replay(steps, stable_a())[-1][-1]
    assert finished.type is T.PIPELINERUN_FINISHED
    assert finished.body["subject"]["content"]["outcome"] == "failure"
    assert "endReason" not in finished.body["customData"]


def test_new_stack_already_in_flight_does_not_claim_the_stable_was_promoted() -> None:
    new, ctx = full_rollout()[1]
    events = build_events(None, new, ctx)
    # deployedOnce is already set: the service counts as deployed here, but nothing was promoted.
    assert [e.type for e in events] == [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED, T.SERVICE_DEPLOYED]
    assert events[0].chain_id == events[1].chain_id == chain_id_for("prod", "shop", "web", REV_B)
    assert events[2].chain_id == chain_id_for("prod", "shop", "web", REV_A)
    assert events[2].body["subject"]["content"]["artifactId"].endswith("tag=v1")
    not_yet_deployed = build_events(None, new.with_changes(deployed_once=False, phase=Phase.PROGRESSING), ctx)
    assert [e.type for e in not_yet_deployed] == [T.PIPELINERUN_STARTED, T.ROLLOUT_PROGRESSED]
