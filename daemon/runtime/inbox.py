"""[push]'s receiver on this node (any node receives; the leader reads), with a
connection to the state of its own: unfenced, since a standby queues too, and untouched
when the lead is lost (the engine's calls are aborted then)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from ..app import open_state
from ..config import Config
from ..receiver import Notifications, Receiver
from ..store import StateError
from ..store.sql import SqlStore
from .push import Push

log = logging.getLogger("daemon.service")


def _where(config: Config | None) -> tuple[str, str] | None:
    push = config.push if config is not None else None
    return (push.listen, push.public_url) if push is not None else None


class Inbox:
    def __init__(self, push: Push, clock: Callable[[], datetime]) -> None:
        self._push, self._clock = push, clock
        self._receiver: Receiver | None = None
        self._state: SqlStore | None = None

    def listen(self, config: Config, before: Config | None = None) -> None:
        """The receiver of `config` (after a reload from `before`: moved only when its
        address changed); when it cannot listen, push says so and the pass polls all."""
        if before is not None and _where(before) == _where(config):
            return
        self.close()
        self._push.receiving = False
        if config.push is None:
            return
        try:
            self._state = open_state(config)
            app = Notifications(config.push.public_url, self._state.subscription,
                                self._notified, confirm=self._state.confirm)
            receiver = Receiver(app, config.push.listen)
            receiver.start()
        except (OSError, StateError) as err:
            log.error("action=push-listen listen=%s problem=%r outcome=polled-every-interval",
                      config.push.listen, str(err))
            self.close()
            return
        self._receiver = receiver
        self._push.receiving = True
        log.info("action=push-listen listen=%s public_url=%s", config.push.listen,
                 config.push.public_url)

    def close(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.stop()
        state, self._state = self._state, None
        if state is not None:
            state.close()

    def _notified(self, key: str, why: str) -> None:
        assert self._state is not None
        self._state.notified(key, why, self._clock())
        self._push.wake()
