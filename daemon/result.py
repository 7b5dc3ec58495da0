"""What one pass found for one instructor: written by the engine and its Zoom side,
read by the pass, the schedule of checks, the state and the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .model import Instructor, Room
from .recurrence import Session


@dataclass
class Result:
    instructor: Instructor
    changes: list[str] = field(default_factory=list)  # one line per event written (or planned)
    checked_at: datetime | None = None  # the moment the pass looked at this instructor
    zoom: str = ""  # the room's check, in words
    room: Room | None = None  # ... and as a value (None: not checked)
    error: str | None = None
    next_session: Session | None = None
    sessions: list[Session] | None = None  # ahead, up to engine.HORIZON (None: not read)
    offboarded: bool = False  # taken out by remove-links: not served
    held: bool = False  # the state database could not be used: nothing done, tried again
    damaged: bool = False  # ... because it is damaged: only a restart sets it aside
