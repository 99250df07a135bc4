"""The knowledge base as the running bot sees it: reloaded when an editor saves a file."""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.errors import KnowledgeError
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeBase
from bot.knowledge.phrasings import PHRASINGS_FILE

logger = logging.getLogger(__name__)
SUGGESTION_MIN_SCORE = 0.25


class LiveKnowledge:
    """Loads ``knowledge/`` lazily and reloads it when a file changes.

    A broken edit never takes the bot down: the error is logged (naming file and entry)
    and the last good knowledge base keeps answering.
    """

    def __init__(self, directory: Path, check_interval: float = 1.0, synonyms: Path | None = None) -> None:
        """Watch ``directory``; look at file times at most every ``check_interval`` seconds.

        Args:
            directory: The knowledge folder.
            check_interval: Seconds between checks of the files' times.
            synonyms: The synonym table for the search (default: ``directory/synonyms.yml``
                if it exists).
        """
        self._directory = directory
        default = directory / "synonyms.yml"
        self._synonyms = synonyms or (default if default.exists() else None)
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._kb: KnowledgeBase | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._checked_at = 0.0
        self._search: tuple[KnowledgeBase, Any] | None = None
        self._building: KnowledgeBase | None = None  # knowledge base whose index a thread builds

    def _current_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamp = []
        # The fact sheet too: its values are part of every answer that uses a placeholder; and the
        # customers' phrasings, which the search matches.
        for path in [*sorted((self._directory / "faq").glob("*.yml")), self._directory / "facts.yml",
                     self._directory / PHRASINGS_FILE]:
            try:
                info = path.stat()
            except OSError:  # replaced by an editor between listing and stat (or no facts.yml): look again next time
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

    def search(self, text: str, top: int = 5) -> list[Any]:
        """The FAQ search's best entries for ``text`` (:class:`bot.knowledge.search.SearchHit`).

        The index is rebuilt after the knowledge base reloads, so an edited or imported
        entry is searchable within a second, with no retraining.
        """
        return self._current_search().search(text, top=top)

    def prepare(self) -> None:
        """Load the knowledge base and build its search index now rather than on the first search.

        Building the index takes seconds (the re-ranker is fitted on the entries' questions).
        Inside Rasa the search runs on the server's event loop, so an index built by the
        first message holds up every conversation meanwhile (the handoff benchmark's first
        customers after a start waited seconds: benchmarks/handoff_load.py).

        Raises:
            KnowledgeError: The knowledge folder cannot be loaded.
        """
        self._current_search().build()

    def _current_search(self) -> Any:
        """The search to answer with now.

        After a reload the new index is built by a background thread while the previous
        index keeps answering: built here, a 2,000-entry index (seconds) would hold up
        Rasa's event loop, and every conversation with it, at each editor's save. The
        first index (nothing to answer with meanwhile) is built by :meth:`prepare` or the
        first search.
        """
        from bot.knowledge.search import FaqSearch

        kb = self.get()
        with self._lock:
            if self._search is not None and self._search[0] is kb:
                return self._search[1]
            if self._search is None or not self._search[1].built:
                self._search = (kb, FaqSearch(kb, self._synonyms))
                return self._search[1]
            if self._building is not kb:
                self._building = kb
                threading.Thread(target=self._build_in_background, args=(kb,), name="faq-index",
                                 daemon=True).start()
            return self._search[1]

    def _build_in_background(self, kb: KnowledgeBase) -> None:
        """Build ``kb``'s index, then answer with it (unless a newer edit came meanwhile)."""
        from bot.knowledge.search import FaqSearch

        search = FaqSearch(kb, self._synonyms)
        try:
            search.build()
        except Exception:  # noqa: BLE001 - the previous index keeps answering; the log names the cause
            logger.exception("FAQ search index not rebuilt after a knowledge edit; the previous one answers")
            with self._lock:
                if self._building is kb:
                    self._building = None
            return
        with self._lock:
            if self._building is kb:
                self._search, self._building = (kb, search), None
                logger.info("FAQ search index rebuilt: %d entries", len(kb.entries))

    def wait_until_current(self, timeout: float = 30.0) -> bool:
        """Wait until the search answers from the current knowledge base (tests, CLI).

        Returns:
            Whether it does within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            search = self._current_search()
            if search.kb is self.get():
                search.build()  # a first index is built here; a rebuilt one already is
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def find(self, text: str, top: int = 3, min_score: float = SUGGESTION_MIN_SCORE) -> list[str]:
        """Ids of the FAQ entries the search ranks best for ``text`` (clarify suggestions).

        ``min_score`` drops hits that only share a common word (unrelated questions score
        about 0.1).
        """
        return [hit.faq_id for hit in self.search(text, top=top) if hit.score >= min_score]


@lru_cache(maxsize=4)
def shared_knowledge(directory: Path) -> LiveKnowledge:
    """One :class:`LiveKnowledge` per knowledge directory and process (NLU and actions share it).

    Its search uses the same synonym table as the tokenizer (:attr:`Settings.synonyms_file`).
    """
    from bot.settings import get_settings

    return LiveKnowledge(Path(directory), synonyms=get_settings().synonyms_file)
