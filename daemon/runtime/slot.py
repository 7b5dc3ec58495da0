"""The configuration and engine in force. A reload or a new term puts a new pair in; the
old engine is closed once the last job that took it has ended (a job holds the engine it
started with, so a reload never closes one under a running pass or check)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from ..engine import Engine


class EngineSlot:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config: Config | None = None
        self.engine: Engine | None = None
        self._in_use: Counter[Engine] = Counter()  # jobs running with each engine
        self._retired: set[Engine] = set()  # replaced, closed once unused

    def swap(self, config: Config, engine: Engine) -> None:
        """Put a new config and engine in force; the old engine is closed once unused."""
        with self._lock:
            old, self.config, self.engine = self.engine, config, engine
            if old is not None and self._in_use[old]:
                self._retired.add(old)  # a job still runs with it: closed when it ends
                old = None
        if old is not None:
            old.close()  # its state connection, HTTP clients and calendar sessions

    @contextmanager
    def current(self) -> Iterator[tuple[Config | None, Engine | None]]:
        """The config and engine in force, held until the block ends."""
        with self._lock:
            config, engine = self.config, self.engine
            if engine is not None:
                self._in_use[engine] += 1
        try:
            yield config, engine
        finally:
            if engine is not None:
                with self._lock:
                    self._in_use[engine] -= 1
                    done = engine in self._retired and not self._in_use[engine]
                    if done:
                        self._retired.discard(engine)
                        del self._in_use[engine]
                if done:
                    engine.close()

    def engines(self) -> tuple[Engine, ...]:
        """Every engine still open: the one in force and those still in use."""
        with self._lock:
            return tuple(e for e in (self.engine, *self._retired) if e is not None)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
