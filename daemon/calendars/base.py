"""What the engine needs from a calendar provider (its errors: ../errors.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from ..errors import CalendarError
from ..model import Event
from ..store import Fence, Subscription

T = TypeVar("T")


@dataclass(frozen=True)
class Listing:
    events: list[Event]
    sync_token: str  # hand back next time to get only what changed
    full: bool  # True: this is the whole calendar, anything not in it is gone


@dataclass(frozen=True)
class Channel:
    """A calendar's change notifications as the vendor made them: Google's channel id and
    resourceId, or Graph's subscription id (resource ""); when they end."""

    id: str
    resource: str
    expires: datetime

    @classmethod
    def of(cls, subscription: Subscription) -> Channel:
        """The vendor's channel a kept subscription stands for."""
        return cls(subscription.channel, subscription.resource, subscription.expires)


class CalendarProvider(Protocol):
    requests: int
    description_limit: int  # the longest description the calendar takes, in characters

    def changes(self, sync_token: str | None) -> Listing:
        """Everything (sync_token None) or what changed since sync_token."""
        ...

    def get(self, event_id: str) -> Event | None:
        """One event as it is now, or None when it is gone."""
        ...

    def patch(self, event: Event, description: str, location: str) -> Event:
        """Write description and location if `event.etag` is still current; raise Conflict."""
        ...

    def watch(self, address: str, secret: str, until: datetime, name: str) -> Channel:
        """Have the vendor call `address` with `secret` on each change of this calendar,
        until `until` at most (the vendor may end it sooner: see Channel.expires); `name`
        is its id where the caller names it (Google), else the vendor's."""
        ...

    def renew(self, channel: Channel, until: datetime) -> Channel | None:
        """The same notifications until `until`; None: this vendor renews none (a new
        channel is made instead); Gone: the vendor no longer has it."""
        ...

    def unwatch(self, channel: Channel) -> None:
        """No more notifications; one the vendor no longer has is not an error."""
        ...

    def access(self) -> str:
        """Check the calendar can be read and written (without writing); describe the access
        in a few words, or raise CalendarError saying why not."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class FencedCalendar:
    """A provider whose every write first asks the node's fence (leader.py): on two or
    more nodes, an event is written only while this node leads in its engine's term.
    Applied where the engine is built (app.Providers), so no caller can forget it."""

    def __init__(self, inner: CalendarProvider, fence: Fence) -> None:
        self._inner, self._fence = inner, fence
        self.description_limit = inner.description_limit

    @property
    def requests(self) -> int:
        return self._inner.requests

    @requests.setter
    def requests(self, value: int) -> None:
        self._inner.requests = value

    def changes(self, sync_token: str | None) -> Listing:
        return self._inner.changes(sync_token)

    def get(self, event_id: str) -> Event | None:
        return self._inner.get(event_id)

    def patch(self, event: Event, description: str, location: str) -> Event:
        self._fence.check()  # Fenced: not written
        return self._inner.patch(event, description, location)

    def watch(self, address: str, secret: str, until: datetime, name: str) -> Channel:
        self._fence.check()
        return self._inner.watch(address, secret, until, name)

    def renew(self, channel: Channel, until: datetime) -> Channel | None:
        self._fence.check()
        return self._inner.renew(channel, until)

    def unwatch(self, channel: Channel) -> None:
        self._fence.check()
        self._inner.unwatch(channel)

    def access(self) -> str:
        return self._inner.access()

    def close(self) -> None:
        self._inner.close()


def checked(vendor: str, item: Any, convert: Callable[[Mapping[str, Any]], T]) -> T:
    """A vendor's event read at the edge: a field missing or of the wrong type is a
    CalendarError naming the event (when it has an id) and the problem, never an
    AttributeError further on."""
    if not isinstance(item, Mapping):
        raise CalendarError(f"{vendor}: an event is a {type(item).__name__}, not an object")
    found = item.get("id")
    name = found if isinstance(found, str) else "?"
    try:
        return convert(item)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CalendarError(f"{vendor} event {name[:80]}: a field is missing or of the wrong "
                            f"type ({type(err).__name__}: {str(err)[:120]})") from None


def text(item: Mapping[str, Any], key: str) -> str:
    """A text field: "" when absent or null; TypeError when it is anything but text."""
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{key} is a {type(value).__name__}, not text")
    return value


def identifier(item: Mapping[str, Any], key: str = "id") -> str:
    """An id: non-empty text, or ValueError."""
    value = text(item, key)
    if not value:
        raise ValueError(f"{key} is missing")
    return value


def instant(value: Any) -> datetime | None:
    """A last-modified time (Google's `updated`, Graph's `lastModifiedDateTime`: RFC 3339,
    maybe with a Z and up to 7 decimals) as an aware datetime; None for anything else: it
    only feeds a metric, and never fails the event it came with."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    head, dot, tail = value.replace("Z", "+00:00").partition(".")
    if dot:  # Python reads at most 6 decimals (Graph sends 7)
        digits = len(tail) - len(tail.lstrip("0123456789"))
        head += "." + tail[:min(digits, 6)].ljust(6, "0") + tail[digits:]
    try:
        moment = datetime.fromisoformat(head)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
