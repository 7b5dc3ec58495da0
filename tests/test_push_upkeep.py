"""[push] subscriptions over their life, in this process with a clock of the test's own
(runtime/push.py's `keep` and `drain`, against the emulators over HTTPS and a receiver):
made once, renewed before they end (Graph: PATCH; Google: a new channel, the old one
stopped), made again after Graph removed one, polled as usual while one cannot be made,
stopped when the instructor is no longer served."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import wait_for
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.entra import graph_error
from officehours_sandbox.server import Response
from test_push import ADA, GRACE, free_port

from daemon.app import open_engine
from daemon.config import Config, load
from daemon.engine import Engine
from daemon.model import Instructor
from daemon.receiver import Notifications, Receiver
from daemon.runtime import push
from daemon.runtime.checks import Schedule
from daemon.runtime.push import Push


@dataclass
class Campus:
    config: Config
    engine: Engine
    push: Push
    clock: list[datetime]
    served: dict[str, Instructor]
    reads: list[tuple[str, str]]

    def keep(self, confirmed: bool = True) -> None:
        """A round of upkeep, and Google's "sync" messages of the channels it made."""
        self.push.keep(threading.Event())
        if confirmed:
            wait_for(lambda: all(s.confirmed for s in self.engine.state.subscriptions().values()
                                 if s.channel and not s.problem), what="channels confirmed")

    def later(self, delta: timedelta) -> None:
        self.clock[0] += delta


@pytest.fixture
def campus(sandbox: Sandbox) -> Iterator[Campus]:
    sandbox.add_instructor("Ada Lovelace", ADA, 8123456789)
    sandbox.add_microsoft_instructor("Grace Hopper", GRACE, 8234567890)
    listen = f"127.0.0.1:{free_port()}"
    sandbox.push(listen)
    config = load(sandbox.write_config())
    clock = [datetime.now(UTC)]
    sandbox.graph.clock = lambda: clock[0]  # Graph's "10,080 minutes from now" is ours
    engine = open_engine(config, clock=lambda: clock[0])
    assert config.push is not None
    receiver = Receiver(Notifications(config.push.public_url, engine.state.subscription,
                                      lambda key, why: engine.state.notified(key, why,
                                                                             clock[0]),
                                      confirm=lambda channel, _: engine.state.confirm(
                                          channel, clock[0])), listen)
    receiver.start()
    reads: list[tuple[str, str]] = []
    schedule = Schedule(lambda: clock[0], lambda *args: None)
    schedule.start(None, None)
    served = {i.key: i for i in config.instructors}
    keeper = Push(schedule, lambda key, why: reads.append((key, why)), lambda: served,
                  lambda: True, lambda: clock[0])
    keeper.attach(config, engine)
    try:
        yield Campus(config, engine, keeper, clock, served, reads)
    finally:
        schedule.close()
        receiver.stop()
        engine.close()


def test_made_once_then_renewed_before_they_end(sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    made = campus.engine.state.subscriptions()
    assert set(made) == {ADA, GRACE} and all(s.healthy(campus.clock[0]) for s in made.values())
    (channel,) = sandbox.google.live_channels(ADA)
    (subscription,) = sandbox.graph.subscriptions.values()
    assert (made[ADA].channel, made[GRACE].channel) == (channel["id"], subscription["id"])
    assert made[ADA].secret == channel["token"] and \
        made[GRACE].secret == subscription["clientState"]
    assert campus.push.due(list(campus.config.instructors)) == list(
        campus.config.instructors)  # not started: a pass reads everyone
    campus.keep()  # nothing due: nothing written
    assert len(sandbox.google.requests("POST", "/watch")) == 1
    assert len(sandbox.graph.requests("POST", "/subscriptions")) == 1
    # a day before Graph's end (its answer: what we asked, 10,000 minutes) and Google's (a
    # week, its default): Graph's is renewed in place, Google's replaced and stopped
    assert made[GRACE].expires < made[ADA].expires
    campus.later(made[ADA].expires - campus.clock[0] - push.RENEW_BEFORE + timedelta(minutes=1))
    campus.keep()
    again = campus.engine.state.subscriptions()
    assert again[GRACE].channel == subscription["id"] and \
        again[GRACE].expires > made[GRACE].expires
    assert len(sandbox.graph.requests("PATCH", "/subscriptions/")) == 1
    assert again[ADA].channel != channel["id"]
    assert [c["id"] for c in sandbox.google.live_channels(ADA)] == [again[ADA].channel]
    assert len(sandbox.google.requests("POST", "/channels/stop")) == 1


def test_a_subscription_graph_removed_is_made_again_and_the_calendar_read(
        sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    (subscription,) = sandbox.graph.subscriptions
    sandbox.graph.lifecycle(subscription, "subscriptionRemoved")
    assert sandbox.deliveries is not None
    wait_for(sandbox.deliveries.idle, what="the lifecycle notification delivered")
    campus.push.drain()
    wait_for(lambda: campus.reads, what="the calendar read")
    assert campus.reads == [(GRACE, "graph:subscriptionRemoved")]
    campus.keep()
    (remade,) = sandbox.graph.subscriptions
    assert remade != subscription and campus.engine.state.subscriptions()[GRACE].channel == remade


def test_a_calendar_without_a_subscription_is_polled_and_tried_again(
        sandbox: Sandbox, campus: Campus) -> None:
    sandbox.graph.fail("POST", "/v1.0/subscriptions", _forbidden(), times=100)
    campus.keep()
    kept = campus.engine.state.subscriptions()[GRACE]
    assert kept.problem and "403" in kept.problem and not kept.healthy(campus.clock[0])
    posts = len(sandbox.graph.requests("POST", "/subscriptions"))
    campus.keep()  # not tried again before RETRY_FAILED
    assert len(sandbox.graph.requests("POST", "/subscriptions")) == posts
    everyone = list(campus.config.instructors)
    # Ada's calendar, read just now with healthy push, is left to push; Grace's is polled
    campus.push.was_read(ADA, campus.clock[0])
    campus.push.was_read(GRACE, campus.clock[0])
    campus.push._thread = threading.current_thread()  # as if started: due() applies
    try:
        assert [i.email for i in campus.push.due(everyone)] == [GRACE]
        campus.later(timedelta(seconds=3600))  # the safety interval: Ada's read too
        assert {i.email for i in campus.push.due(everyone)} == {ADA, GRACE}
    finally:
        campus.push._thread = None
    sandbox.graph.faults.clear()
    campus.later(push.RETRY_FAILED)
    campus.keep()
    assert campus.engine.state.subscriptions()[GRACE].healthy(campus.clock[0])


def test_an_instructor_no_longer_served_has_their_subscription_stopped(
        sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    del campus.served[ADA]  # out of the roster
    campus.engine.state.offboard(GRACE, campus.clock[0])  # remove-links
    campus.keep()
    assert campus.engine.state.subscriptions() == {}
    assert sandbox.google.live_channels(ADA) == [] and sandbox.graph.subscriptions == {}


def _forbidden() -> Response:
    return graph_error(403, "ExtensionError", "Operation: Create; Exception: [Status Code: "
                       "Forbidden; Reason: Forbidden]")


def test_remove_links_stops_the_notifications_at_once(sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    (ada,) = [i for i in campus.config.instructors if i.key == ADA]
    result = campus.engine.remove_links(ada)
    assert result.error is None
    assert set(campus.engine.state.subscriptions()) == {GRACE}
    assert sandbox.google.live_channels(ADA) == []
    campus.keep()  # offboarded: not made again
    assert sandbox.google.live_channels(ADA) == []


def test_a_new_public_url_gets_new_subscriptions_and_the_old_ones_stop(
        sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    before = campus.engine.state.subscriptions()
    assert campus.config.push is not None
    moved = replace(campus.config, push=replace(campus.config.push,
                                                public_url=sandbox.public_url + "/v2"))
    sandbox.graph._validated = lambda url: True  # type: ignore[method-assign]
    campus.push.attach(moved, campus.engine)  # a reload with the new URL
    campus.keep(confirmed=False)  # (the receiver here still serves the old path)
    after = campus.engine.state.subscriptions()
    assert {s.address for s in after.values()} == {
        sandbox.public_url + "/v2/google", sandbox.public_url + "/v2/graph"}
    assert all(after[k].channel != before[k].channel for k in after)
    assert [c["address"] for c in sandbox.google.live_channels()] == [after[ADA].address]
    assert [s["notificationUrl"] for s in sandbox.graph.subscriptions.values()] == [
        after[GRACE].address]


def test_a_channel_google_never_reached_us_through_is_not_trusted(
        sandbox: Sandbox, campus: Campus) -> None:
    """Google accepts events.watch whatever the proxy does: only its first message ("sync")
    says public_url works; without it the calendar is polled, said, and tried again later
    (the wait doubling)."""
    assert sandbox.deliveries is not None
    sandbox.deliveries.drop_next(1)  # Ada's sync (Grace's is Graph's validation)
    campus.keep(confirmed=False)
    wait_for(sandbox.deliveries.idle, what="the sync lost")
    kept = campus.engine.state.subscriptions()
    assert kept[ADA].confirmed is None and not kept[ADA].healthy(campus.clock[0])
    assert kept[GRACE].healthy(campus.clock[0])  # validated by Graph before it was made
    campus.push._thread = threading.current_thread()  # as if started: due() applies
    try:
        everyone = list(campus.config.instructors)
        for instructor in everyone:
            campus.push.was_read(instructor.key, campus.clock[0])
        assert [i.email for i in campus.push.due(everyone)] == [ADA]
        campus.push.receiving = False  # this node's receiver could not listen
        assert campus.push.due(everyone) == everyone
    finally:
        campus.push._thread = None
        campus.push.receiving = True
    campus.later(push.CONFIRM_WITHIN + timedelta(seconds=1))
    campus.keep(confirmed=False)
    failed = campus.engine.state.subscriptions()[ADA]
    assert failed.problem and "never reached public_url" in failed.problem
    watches = len(sandbox.google.requests("POST", "/watch"))
    campus.later(push.RETRY_FAILED)
    campus.keep()  # tried again: a new channel, confirmed this time, the old one stopped
    assert len(sandbox.google.requests("POST", "/watch")) == watches + 1
    assert campus.engine.state.subscriptions()[ADA].healthy(campus.clock[0])
    assert len(sandbox.google.live_channels(ADA)) == 1


def test_failures_wait_longer_each_time_and_a_campus_wide_one_ends_the_round(
        sandbox: Sandbox, campus: Campus) -> None:
    sandbox.google.fail("POST", ".*/watch", Response(403, {"error": {
        "code": 403, "message": "Forbidden", "errors": []}}), times=1000)
    campus.keep(confirmed=False)
    campus.later(push.RETRY_FAILED)
    campus.keep(confirmed=False)  # the second failure: the next wait is twice as long
    watches = len(sandbox.google.requests("POST", "/watch"))
    campus.later(push.RETRY_FAILED)
    campus.keep(confirmed=False)
    assert len(sandbox.google.requests("POST", "/watch")) == watches
    campus.later(push.RETRY_FAILED)
    campus.keep(confirmed=False)
    assert len(sandbox.google.requests("POST", "/watch")) == watches + 1
    # twenty refusals in a row end the round: the rest wait for the next one
    many = {f"p{n:02d}@example.edu": Instructor(f"P{n}", f"p{n:02d}@example.edu", "google",
                                                "primary", f"p{n:02d}@example.edu")
            for n in range(30)}
    for key in many:
        sandbox.add_instructor(key, key, 8100000000 + int(key[1:3]))
    campus.served.update(many)
    before = len(sandbox.google.requests("POST", "/watch"))
    campus.keep(confirmed=False)
    assert len(sandbox.google.requests("POST", "/watch")) - before == push.GIVE_UP_ROUND


def test_push_taken_out_of_the_config_ends_every_subscription(
        sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    campus.push.attach(replace(campus.config, push=None), campus.engine)  # a reload
    campus.keep()
    assert campus.engine.state.subscriptions() == {}
    assert sandbox.google.live_channels() == [] and sandbox.graph.subscriptions == {}


def test_a_subscription_graph_let_expire_is_made_anew_at_renewal(
        sandbox: Sandbox, campus: Campus) -> None:
    campus.keep()
    (subscription,) = sandbox.graph.subscriptions
    sandbox.graph.expire(subscription)  # gone at Graph ("deleted" when not renewed)
    kept = campus.engine.state.subscriptions()[GRACE]
    campus.later(kept.expires - campus.clock[0] - push.RENEW_BEFORE + timedelta(minutes=1))
    campus.keep()
    assert len(sandbox.graph.requests("PATCH", "/subscriptions/")) == 1  # 404: gone
    (made,) = sandbox.graph.subscriptions
    assert made != subscription and campus.engine.state.subscriptions()[GRACE].channel == made
