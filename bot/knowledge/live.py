"""The knowledge base as the running bot sees it: reloaded when an editor saves a file."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from bot.errors import KnowledgeError
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeBase

logger = logging.getLogger(__name__)


class LiveKnowledge:
    """Loads ``knowledge/`` lazily and reloads it when a file changes.

    A broken edit never takes the bot down: the error is logged (naming file and entry)
    and the last good knowledge base keeps answering.
    """

    def __init__(self, directory: Path, check_interval: float = 1.0) -> None:
        """Watch ``directory``; look at file times at most every ``check_interval`` seconds."""
        self._directory = directory
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._kb: KnowledgeBase | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._checked_at = 0.0

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamp = []
        for path in sorted((self._directory / "faq").glob("*.yml")):
            try:
                info = path.stat()
            except OSError:  # replaced by an editor between listing and stat: look again next time
                continue
            # Size as well as time: two saves within the file system's time resolution.
            stamp.append((str(path), info.st_mtime_ns, info.st_size))
        return tuple(stamp)

    def get(self) -> KnowledgeBase:
        """The current knowledge base (loads on first call, reloads after edits).

        Raises:
            KnowledgeError: Only when the very first load fails.
        """
        with self._lock:
            now = time.monotonic()
            if self._kb is not None and now - self._checked_at < self._check_interval:
                return self._kb
            self._checked_at = now
            stamp = self._current_stamp()
            if self._kb is not None and stamp == self._stamp:
                return self._kb
            try:
                kb = load_knowledge(self._directory)
            except (KnowledgeError, OSError):
                if self._kb is None:
                    raise
                logger.exception("knowledge reload failed; keeping the previous version")
                self._stamp = stamp  # do not retry the same broken files every second
                return self._kb
            self._kb, self._stamp = kb, stamp
            logger.info("knowledge loaded: %d entries", len(kb.entries))
            return kb
