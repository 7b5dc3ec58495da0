"""The contract every state backend passes (vdirsyncer's StorageTests, for our Store):
subclass StoreContract and give it `make`, and `reopen` when the backend persists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.model import Event, Kind, fingerprint
from daemon.store import Store, Subscription

ADA, BOB = "ada@example.edu", "bob@example.edu"
T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def series(event_id: str = "s1", title: str = "Office Hours") -> Event:
    return Event(event_id, Kind.SERIES, title, organizer_self=True, start=T0,
                 end=T0 + timedelta(hours=1), timezone="America/New_York",
                 recurrence=("RRULE:FREQ=WEEKLY",))


def moved(event_id: str, series_id: str) -> Event:
    return Event(event_id, Kind.EXCEPTION, "Office Hours", organizer_self=True,
                 series_id=series_id, original_start=T0 + timedelta(days=7),
                 start=T0 + timedelta(days=7, hours=2), end=T0 + timedelta(days=7, hours=3))


class StoreContract:
    def make(self, tmp_path: Path) -> Store:
        raise NotImplementedError

    def reopen(self, store: Store, tmp_path: Path) -> Store | None:
        """The same state opened afresh, or None for a backend that does not persist."""
        return None

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        made = self.make(tmp_path)
        yield made
        made.close()

    def test_sync_tokens_are_per_instructor_and_calendar(self, store: Store) -> None:
        assert store.sync_token(ADA, "primary") is None
        store.save_sync_token(ADA, "primary", "t1")
        store.save_sync_token(ADA, "primary", "t2")
        store.save_sync_token(BOB, "primary", "b1")
        store.save_sync_token(ADA, "other", "o1")
        assert (store.sync_token(ADA, "primary"), store.sync_token(BOB, "primary"),
                store.sync_token(ADA, "other")) == ("t2", "b1", "o1")

    def test_events_round_trip_with_what_the_program_needs(self, store: Store) -> None:
        store.replace_events(ADA, [series(), moved("m1", "s1")], full=True, gone=[])
        known = store.known_events(ADA)
        assert set(known) == {"s1", "m1"} and store.known_events(BOB) == {}
        assert known["s1"].event == series()
        assert known["m1"].event.series_id == "s1" and known["m1"].event.kind is Kind.EXCEPTION
        assert store.known_event(ADA, "s1") == known["s1"]
        assert store.known_event(ADA, "nope") is None

    def test_a_full_listing_drops_what_it_no_longer_shows(self, store: Store) -> None:
        store.replace_events(ADA, [series("s1"), series("s2")], full=True, gone=[])
        store.replace_events(ADA, [series("s2")], full=True, gone=[])
        assert set(store.known_events(ADA)) == {"s2"}

    def test_a_gone_series_takes_its_occurrences_along(self, store: Store) -> None:
        store.replace_events(ADA, [series("s1"), moved("m1", "s1"), series("s2")], full=True,
                             gone=[])
        store.replace_events(ADA, [], full=False, gone=["s1"])
        assert set(store.known_events(ADA)) == {"s2"}

    def test_an_update_keeps_what_was_written(self, store: Store) -> None:
        store.replace_events(ADA, [series()], full=True, gone=[])
        store.mark_link(ADA, "s1", "https://z/j/1", "https://z/j/1")
        store.replace_events(ADA, [series(title="Office Hours - CS 101")], full=False, gone=[])
        known = store.known_events(ADA)["s1"]
        assert known.event.title == "Office Hours - CS 101"
        assert known.link_hash == fingerprint("https://z/j/1")
        assert known.owns_location("https://z/j/1")

    def test_a_location_about_to_be_written_is_owned_beside_the_old_one(
            self, store: Store) -> None:
        store.replace_events(ADA, [series()], full=True, gone=[])
        store.mark_link(ADA, "s1", "https://z/j/1", "https://z/j/1")
        store.add_pending_location(ADA, "s1", "https://z/j/2")  # then a kill -9
        known = store.known_events(ADA)["s1"]
        assert known.owns_location("https://z/j/1") and known.owns_location("https://z/j/2")
        store.mark_link(ADA, "s1", "https://z/j/2", "https://z/j/2")  # the write confirmed
        known = store.known_events(ADA)["s1"]
        assert known.owns_location("https://z/j/2") and not known.owns_location("https://z/j/1")
        store.mark_link(ADA, "s1", None, None)
        assert store.known_events(ADA)["s1"].link_hash is None

    def test_forgetting_an_instructor_drops_events_and_tokens(self, store: Store) -> None:
        store.replace_events(ADA, [series()], full=True, gone=[])
        store.replace_events(BOB, [series()], full=True, gone=[])
        store.save_sync_token(ADA, "primary", "t")
        store.forget_instructor_events(ADA)
        assert store.known_events(ADA) == {} and store.sync_token(ADA, "primary") is None
        assert set(store.known_events(BOB)) == {"s1"}

    def test_status_fields_round_trip(self, store: Store) -> None:
        assert not store.pmi_checked(ADA) and store.served_as(ADA) is None
        served = {"name": "Ada", "email": ADA, "provider": "google", "calendar_id": "primary",
                  "zoom_user": ADA}
        store.record_status(ADA, "Ada", last_pass=T0.isoformat(), error_logged_for="x",
                            served_as=json.dumps(served))
        store.record_status(ADA, "Ada Lovelace", pmi=json.dumps({"waiting_room": True}))
        assert store.pmi_checked(ADA) and store.error_logged_for(ADA) == "x"
        assert store.served_as(ADA) == served
        with pytest.raises(ValueError, match="unknown status fields"):
            store.record_status(ADA, "Ada", password="x")

    def test_offboarding_until_reinstated(self, store: Store) -> None:
        store.offboard(ADA, T0)
        store.offboard(ADA, T0 + timedelta(hours=1))  # again: the first moment stays
        store.offboard(BOB, T0)
        assert store.is_offboarded(ADA) and store.offboarded() == {
            ADA: T0.isoformat(), BOB: T0.isoformat()}
        assert store.reinstate(ADA) == [ADA] and not store.is_offboarded(ADA)
        assert store.reinstate(ADA) == []
        assert store.reinstate(None) == [BOB] and store.offboarded() == {}

    def test_a_roster_applied_marks_leavers_once_and_keeps_who_comes_back(
            self, store: Store) -> None:
        ada = {"name": "Ada", "email": ADA, "provider": "google", "calendar_id": "primary",
               "zoom_user": ADA}
        bob = {**ada, "name": "Bob", "email": BOB, "zoom_user": BOB}
        store.apply_roster([ada, bob], T0)
        store.apply_roster([ada], T0 + timedelta(hours=1))
        store.apply_roster([ada], T0 + timedelta(hours=2))  # still gone: the first moment
        assert store.roster() == {ADA: (ada, None),
                                  BOB: (bob, (T0 + timedelta(hours=1)).isoformat())}
        store.offboard(BOB, T0 + timedelta(hours=3), by="roster")
        store.offboard(ADA, T0, by="remove-links")
        store.apply_roster([ada, bob], T0 + timedelta(hours=4))  # Bob is back
        assert store.roster()[BOB] == (bob, None) and not store.is_offboarded(BOB)
        assert store.is_offboarded(ADA)  # an admin's offboarding is not the roster's to undo

    def test_a_held_read_until_the_hold_is_over(self, store: Store) -> None:
        assert store.held() is None
        store.hold("the roster is empty", T0)
        store.hold("the roster is empty", T0 + timedelta(minutes=5))  # still: since T0
        assert store.held() == ("the roster is empty", T0.isoformat())
        store.hold(None, T0 + timedelta(minutes=5))
        assert store.held() is None

    def test_the_audit_log_in_order_and_filtered(self, store: Store) -> None:
        for minutes, who in ((0, ADA), (5, BOB), (10, ADA)):
            store.audit(T0 + timedelta(minutes=minutes), who, "event:s1", "update-event",
                        {"n": minutes})
        assert [e[4]["n"] for e in store.audit_log()] == [0, 5, 10]
        assert [e[4]["n"] for e in store.audit_log(ADA)] == [0, 10]
        assert [e[4]["n"] for e in store.audit_log(None, T0 + timedelta(minutes=5))] == [5, 10]

    def test_subscriptions_by_instructor_and_by_channel(self, store: Store) -> None:
        made = Subscription(ADA, "google", "ch-1", "res-1", "s3cret", T0 + timedelta(days=7),
                            since=T0, address="https://x/push/google", calendar="primary")
        store.save_subscription(made)
        assert not store.subscriptions()[ADA].healthy(T0)  # not until Google reached us
        store.confirm("ch-1", T0)
        store.save_subscription(made)  # saved again (its resourceId, say): still confirmed
        made = replace(made, confirmed=T0)
        store.save_subscription(Subscription(BOB, "microsoft", "", "", "", T0, "HTTP 403", T0))
        assert store.subscriptions()[ADA] == made and store.subscription("ch-1") == made
        assert store.subscription_of(ADA) == made and store.subscription_of("x@y.z") is None
        assert store.subscription("") is None and store.subscription("ch-2") is None
        assert not store.subscriptions()[BOB].healthy(T0) and made.healthy(T0)
        assert not made.healthy(T0 + timedelta(days=7))  # expired
        renewed = Subscription(ADA, "google", "ch-2", "res-2", "new", T0 + timedelta(days=14))
        store.save_subscription(renewed)  # a new channel: not confirmed by the old one's
        assert store.subscription("ch-1") is None and store.subscription("ch-2") == renewed
        store.drop_subscription(ADA)
        assert set(store.subscriptions()) == {BOB}
        assert "s3cret" not in repr(made)  # never in a log line

    def test_notified_calendars_queue_once_oldest_first(self, store: Store) -> None:
        store.notified(BOB, "google:exists", T0 + timedelta(seconds=1))
        store.notified(ADA, "graph:created", T0)
        store.notified(BOB, "google:exists", T0 + timedelta(seconds=2))  # a burst: once
        assert store.take_notified() == [(ADA, "graph:created"), (BOB, "google:exists")]
        assert store.take_notified() == []
        # a lifecycle event behind a change is not lost (the weightier reason stays)
        for why in ("graph:changed", "graph:subscriptionRemoved", "graph:missed",
                    "graph:changed"):
            store.notified(ADA, why, T0)
        assert store.take_notified() == [(ADA, "graph:subscriptionRemoved")]

    def test_what_is_written_survives_a_restart(self, store: Store, tmp_path: Path) -> None:
        store.save_sync_token(ADA, "primary", "t")
        store.replace_events(ADA, [series()], full=True, gone=[])
        store.offboard(BOB, T0)
        again = self.reopen(store, tmp_path)
        if again is None:
            pytest.skip("this backend keeps nothing across a restart")
        try:
            assert again.sync_token(ADA, "primary") == "t"
            assert set(again.known_events(ADA)) == {"s1"} and again.is_offboarded(BOB)
        finally:
            again.close()
