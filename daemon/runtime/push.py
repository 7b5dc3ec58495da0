"""Calendar change notifications while this node leads ([push]): each served calendar's
subscription made, renewed before it ends and made again when the vendor dropped it; each
calendar the receiver queued (on any node) read at once, one read per calendar at a time
however many notifications came; and the pass told which calendars it may leave to push
(those whose subscription is healthy, read within safety_interval_seconds).

Subscriptions belong to the campus: they are kept in the state, so that a restart or a
failover finds them and makes none again.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from ..calendars.base import CalendarProvider, Channel
from ..config import Config
from ..engine import Engine
from ..errors import CalendarError, Gone, explain
from ..model import Instructor
from ..store import Fenced, StateError, Subscription
from .checks import PerKey, Schedule

log = logging.getLogger("daemon.service")

# Graph keeps an Outlook event subscription 10,080 minutes at most
# (https://learn.microsoft.com/graph/change-notifications-overview); Google a channel as
# long as it sees fit (a week by default), and says so in the answer
LIFETIME = timedelta(minutes=10_000)
RENEW_BEFORE = timedelta(days=1)  # renewed this close to its end (or at half its life)
RETRY_FAILED = timedelta(minutes=10)  # a failed calendar's first retry; doubling to:
RETRY_MOST = timedelta(hours=6)
CONFIRM_WITHIN = timedelta(minutes=2)  # Google's "sync" message, after events.watch
GIVE_UP_ROUND = 20  # failures in a row that end an upkeep round (a campus-wide fault)
# subscription writes at most 20 a second: Graph takes 1,000 per 20 s per app and tenant
# (https://learn.microsoft.com/graph/throttling-limits#subscription-service-limits)
WRITE_GAP = 0.05  # seconds from one subscription write to the next, at least
PROGRESS_EVERY = 500  # a log line every so many subscriptions in one round (a first one)
LOOK = 1.0  # seconds between two looks at the queue (another node's notifications)
KEEP_EVERY = 30.0  # seconds between two rounds of upkeep
REMADE = "graph:subscriptionRemoved"  # a calendar whose subscription is made again
RENEWED = "graph:reauthorizationRequired"  # ... renewed (a PATCH reauthorizes too)

Read = Callable[[str, str], None]  # (instructor key, why): one calendar read


def address(public_url: str, provider: str) -> str:
    """Where a vendor sends one calendar's notifications (receiver.py's paths)."""
    return f"{public_url}/{'google' if provider == 'google' else 'graph'}"


class Push:
    def __init__(self, schedule: Schedule, read: Read,
                 served: Callable[[], dict[str, Instructor] | None],
                 may: Callable[[], bool], clock: Callable[[], datetime]) -> None:
        self._served, self._may = served, may
        self._clock = clock
        self._engine: Engine | None = None
        self._config: Config | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._subscriptions: dict[str, Subscription] = {}  # as last read or written
        self._read_at: dict[str, datetime] = {}  # when each calendar was last read
        # one read per calendar at a time on push's own workers (a burst never queues
        # ahead of the rooms' checks), and one more when notified while it ran
        self._reads: PerKey[str] = PerKey(schedule, "push", lambda key, whys: read(
            key, whys[-1]), may, "push", 1, lambda whys: whys[-1:])
        self._said: dict[str, str] = {}  # each calendar's subscription problem, as said
        self._failures: dict[str, int] = {}  # each calendar's failures in a row
        self._remake: set[str] = set()  # Graph removed it: made again at once
        self._renew: set[str] = set()  # Graph asks to reauthorize: renewed at once
        self._keep_now = False  # upkeep at the next look, not after KEEP_EVERY
        # this node's receiver listens: without it nothing is left to push (service.py)
        self.receiving = True

    # --- the lead: started and stopped with it ---

    def start(self, config: Config, engine: Engine) -> None:
        self.stop()
        self.attach(config, engine)
        if config.push is None and not self._subscriptions:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,),
                                        name="push", daemon=True)
        self._thread.start()

    def attach(self, config: Config, engine: Engine) -> None:
        """The config and engine of this term (start, or a test that runs `keep`)."""
        if self._config is not None and config.push != self._config.push:
            self._read_at.clear()
        self._config, self._engine = config, engine
        self._subscriptions = {}
        with contextlib.suppress(StateError):
            self._subscriptions = engine.state.subscriptions()
        self._reads.clear()

    def stop(self, lead_lost: bool = False) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        if lead_lost:  # a new lead reads every calendar in its first pass
            self._read_at.clear()

    def wake(self) -> None:
        """The receiver on this node queued a calendar: look now, not at the next LOOK."""
        self._wake.set()

    # --- the pass ---

    def due(self, instructors: Sequence[Instructor]) -> list[Instructor]:
        """The calendars a pass reads: all, but those whose notifications are healthy
        (confirmed, unexpired, this node's receiver listening) and that were read within
        safety_interval_seconds."""
        config = self._config
        if config is None or config.push is None or self._thread is None or \
                not self.receiving:
            return list(instructors)
        now, safety = self._clock(), timedelta(seconds=config.push.safety_interval_seconds)
        subscriptions = self._subscriptions
        return [i for i in instructors
                if not (i.key in subscriptions and subscriptions[i.key].healthy(now))
                or now - self._read_at.get(i.key, datetime.min.replace(tzinfo=now.tzinfo))
                >= safety]

    def pass_ended(self) -> None:
        """Whom the program serves is known anew: subscriptions kept up at once."""
        self._keep_now = True
        self._wake.set()

    def was_read(self, key: str, at: datetime) -> None:
        self._read_at[key] = at

    # --- the queue ---

    def _loop(self, stop: threading.Event) -> None:
        kept = float("-inf")
        while not stop.is_set():
            try:
                self.drain()
                if self._keep_now or time.monotonic() - kept >= KEEP_EVERY:
                    kept, self._keep_now = time.monotonic(), False
                    self.keep(stop)
            except (Fenced, StateError) as err:  # the lead is lost, or the database: the
                log.warning("action=push problem=%r outcome=tried-again", str(err))  # next
            except Exception:  # never the end of push: said, tried again at the next look
                log.exception("action=push outcome=tried-again")
            self._wake.wait(LOOK)
            self._wake.clear()

    def drain(self) -> None:
        """The calendars notified (on any node), each read at once; Graph's lifecycle
        events also mark the subscription for upkeep at once."""
        engine = self._engine
        if engine is None or not self._may():
            return
        for key, why in engine.state.take_notified():
            if why in (REMADE, RENEWED):
                (self._remake if why == REMADE else self._renew).add(key)
                self._keep_now = True
            self._reads.ask(key, why)

    # --- upkeep ---

    def keep(self, stop: threading.Event) -> None:
        """One round of upkeep: each served calendar's subscription made, renewed or made
        again; those of calendars no longer served (offboarded, out of the roster, or
        every one once [push] is gone) stopped."""
        engine, config = self._engine, self._config
        served = self._served() if config is not None and config.push is not None else {}
        if engine is None or served is None:
            return  # no pass yet: whom the program serves is not known
        self._subscriptions = engine.state.subscriptions()
        gone = set(engine.state.offboarded())
        for key, kept in list(self._subscriptions.items()):
            if (key not in served or key in gone) and not stop.is_set() and self._may():
                self._end(engine, kept)
        if config is None or config.push is None:
            return
        due = [(i, self._subscriptions.get(i.key)) for i in served.values()
               if i.key not in gone and self._due(i, config.push.public_url)]
        drained, failed = time.monotonic(), 0
        for done, (instructor, found) in enumerate(due, 1):
            if stop.is_set() or not self._may():
                return
            began = time.monotonic()
            if began - drained >= LOOK:  # a long round (the first: every calendar) does
                self.drain()  # not hold up the calendars already notified
                drained = began
            made = self._make(engine, config.push.public_url, instructor, found)
            failed = 0 if made else failed + 1
            if failed >= GIVE_UP_ROUND:  # the same for all, surely: not 5,000 times over
                log.error("action=push-upkeep outcome=round-ended failures-in-a-row=%d "
                          "left=%d retry=next-round", failed, len(due) - done)
                return
            if done % PROGRESS_EVERY == 0 or done == len(due) >= PROGRESS_EVERY:
                log.info("action=push-upkeep done=%d of=%d", done, len(due))
            stop.wait(max(0.0, began + WRITE_GAP - time.monotonic()))

    def _due(self, instructor: Instructor, public_url: str) -> bool:
        """Whether `instructor`'s subscription needs work now."""
        key, now = instructor.key, self._clock()
        found = self._subscriptions.get(key)
        if found is None or key in self._remake or key in self._renew:
            return True
        if found.problem:  # failed: tried again after a wait that doubles each time
            wait = min(RETRY_FAILED * 2 ** max(self._failures.get(key, 1) - 1, 0), RETRY_MOST)
            return found.since is None or now - found.since >= wait
        if found.confirmed is None and found.since and now - found.since > CONFIRM_WITHIN:
            return True  # never confirmed: Google cannot reach public_url (said in _make)
        life = found.expires - (found.since or found.expires - LIFETIME)
        return (found.address != address(public_url, instructor.provider)
                or found.calendar != instructor.calendar_id
                or found.provider != instructor.provider
                or found.expires - now <= min(RENEW_BEFORE, life / 2))

    def _make(self, engine: Engine, public_url: str, instructor: Instructor,
              old: Subscription | None) -> bool:
        """A subscription for `instructor`'s calendar: `old` renewed where the vendor
        renews (Graph) and nothing else changed, else a new one, the old one stopped once
        the new one is kept. Whether it worked (a failure is kept, said and polled)."""
        calendar, now, key = engine.calendar(instructor), self._clock(), instructor.key
        provider, at = instructor.provider, address(public_url, instructor.provider)
        unconfirmed = old is not None and old.problem is None and old.confirmed is None \
            and old.since is not None and now - old.since > CONFIRM_WITHIN
        try:
            if unconfirmed:
                raise CalendarError("the vendor never reached public_url through its new "
                                    "subscription (officehours doctor checks the proxy)")
            if old is not None and old.channel and old.problem is None and \
                    old.address == at and key not in self._remake and \
                    old.calendar == instructor.calendar_id and old.provider == provider:
                with contextlib.suppress(Gone):
                    renewed = calendar.renew(Channel.of(old), now + LIFETIME)
                    if renewed is not None:
                        self._keep_row(engine, replace(old, expires=renewed.expires,
                                                       since=now))
                        self._renew.discard(key)
                        log.info("instructor=%s action=push-renew until=%s",
                                 instructor.email, f"{renewed.expires:%Y-%m-%dT%H:%M}Z")
                        return True
            made = self._watch(engine, calendar, instructor, at, now)
        except CalendarError as err:
            self._failed(engine, instructor, old, explain(err)[:300], now)
            return False
        self._remake.discard(key)
        self._renew.discard(key)
        self._said.pop(key, None)
        self._failures.pop(key, None)
        log.info("instructor=%s action=push-subscribe until=%s%s", instructor.email,
                 f"{made.expires:%Y-%m-%dT%H:%M}Z", " replaces=old" if old and old.channel
                 else "")
        if old is not None and old.channel and old.channel != made.channel:
            self._stop_channel(calendar, old)
        return True

    def _watch(self, engine: Engine, calendar: CalendarProvider, instructor: Instructor,
               at: str, now: datetime) -> Subscription:
        """A new subscription, kept. Google's row is kept before events.watch, under the
        channel id chosen here, so that its "sync" message, which may come before the
        answer, finds it; Graph validated the URL before it answered: confirmed."""
        secret, name = secrets.token_urlsafe(32), uuid.uuid4().hex
        row = Subscription(instructor.key, instructor.provider, name, "", secret,
                           now + LIFETIME, None, now, at, instructor.calendar_id)
        google = instructor.provider == "google"
        if google:
            self._keep_row(engine, row)
        made = calendar.watch(at, secret, now + LIFETIME, name)
        row = replace(row, channel=made.id, resource=made.resource, expires=made.expires,
                      confirmed=None if google else now)
        self._keep_row(engine, row)
        return row

    def _failed(self, engine: Engine, instructor: Instructor, old: Subscription | None,
                problem: str, now: datetime) -> None:
        """A subscription not made or renewed: kept as failed (the calendar is polled),
        said once per problem. A refused renewal keeps the old one (it may still notify,
        and is stopped once a new one is made)."""
        key = instructor.key
        self._failures[key] = self._failures.get(key, 0) + 1
        self._keep_row(engine, replace(old, problem=problem, since=now) if old and
                       old.channel else Subscription(key, instructor.provider, "", "", "", now,
                                                     problem, now))
        if self._said.get(key) != problem:
            self._said[key] = problem
            log.error("instructor=%s action=push-subscribe problem=%r outcome=polled-every-"
                      "interval retry=%dmin", instructor.email, problem,
                      RETRY_FAILED.total_seconds() // 60)

    def _end(self, engine: Engine, subscription: Subscription) -> None:
        """A calendar no longer served: its notifications stopped (as the user they were
        made for: stopping needs no more than the ids; a provider of its own, not the
        engine's cached one, since the calendar id is not known here), its row dropped."""
        if subscription.channel:
            key = subscription.instructor
            calendar = engine.provider(Instructor(key, key, subscription.provider,
                                                  subscription.calendar or "primary", key))
            try:
                self._stop_channel(calendar, subscription)
            finally:
                calendar.close()
        engine.state.drop_subscription(subscription.instructor)
        self._subscriptions.pop(subscription.instructor, None)
        log.info("instructor=%s action=push-unsubscribe", subscription.instructor)

    def _keep_row(self, engine: Engine, subscription: Subscription) -> None:
        engine.state.save_subscription(subscription)
        self._subscriptions[subscription.instructor] = subscription

    @staticmethod
    def _stop_channel(calendar: CalendarProvider, subscription: Subscription) -> None:
        with contextlib.suppress(CalendarError):  # it ends by itself at its expiry
            calendar.unwatch(Channel.of(subscription))

