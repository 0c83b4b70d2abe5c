"""Conversations kept server-side, so a reload, another door or a follow-up finds the same turns.

`ConversationStore` is the interface; `SqliteConversations` keeps them in one SQLite file beside
the index (stdlib sqlite3: one machine needs no server, and WAL lets the UI and the API read while
one of them writes). A server database can replace it behind the same methods. A follow-up's
history is read from here, never taken from the client.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from rag.errors import BadRequestError, RagError
from rag.schema import Answer

FILE_NAME = "conversations.sqlite3"
TITLE_CHARS = 40  # a new conversation is titled by its first question, cut to this


class ConversationNotFoundError(RagError):
    """No conversation of that id (deleted, or never made)."""

    http_status = 404


@dataclass
class Turn:
    question: str
    answer: Answer
    filters: dict = field(default_factory=dict)
    created: str = ""


@dataclass
class Conversation:
    id: str
    title: str
    created: str
    updated: str
    turn_count: int = 0
    turns: list[Turn] = field(default_factory=list)  # read by `get`, not by `list`

    def history(self) -> list[tuple[str, str]]:
        """(question, answer text) pairs, as the pipeline takes a follow-up's history."""
        return [(t.question, t.answer.answer) for t in self.turns]

    def summary(self) -> dict:
        return {"id": self.id, "title": self.title, "created": self.created, "updated": self.updated,
                "turns": self.turn_count}


class ConversationStore(Protocol):
    def create(self, title: str = "") -> Conversation: ...
    def list(self) -> list[Conversation]: ...  # newest first, turns not read
    def get(self, conversation_id: str) -> Conversation: ...
    def rename(self, conversation_id: str, title: str) -> Conversation: ...
    def delete(self, conversation_id: str) -> None: ...
    def append(self, conversation_id: str, question: str, answer: Answer, filters: dict | None = None) -> Turn: ...
    def replace_last(self, conversation_id: str, answer: Answer) -> Turn: ...


def _now() -> str:
    """Local time to the microsecond, so that conversations changed in one second still sort."""
    return datetime.now().isoformat(timespec="microseconds")


def title_of(question: str) -> str:
    """A conversation's title from its first question: one line, at most TITLE_CHARS characters."""
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


class SqliteConversations:
    """Conversations and their turns in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS conversations (
                id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS turns (
                conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                n INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, filters TEXT NOT NULL,
                created TEXT NOT NULL, PRIMARY KEY (conversation_id, n));
            """
        )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SqliteConversations:
        return cls(Path(data_dir) / FILE_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, title: str = "") -> Conversation:
        now = _now()
        conversation = Conversation(uuid.uuid4().hex[:16], title_of(title) if title else "新对话", now, now)
        with self._lock:
            self._db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?)",
                             (conversation.id, conversation.title, now, now))
        return conversation

    def list(self) -> list[Conversation]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, title, created, updated, (SELECT COUNT(*) FROM turns WHERE conversation_id = id) "
                "FROM conversations ORDER BY updated DESC, created DESC").fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: str) -> Conversation:
        with self._lock:
            row = self._db.execute("SELECT id, title, created, updated FROM conversations WHERE id = ?",
                                   (conversation_id,)).fetchone()
            turns = self._db.execute(
                "SELECT question, answer, filters, created FROM turns WHERE conversation_id = ? ORDER BY n",
                (conversation_id,)).fetchall()
        if row is None:
            raise _not_found(conversation_id)
        conversation = Conversation(*row, turn_count=len(turns))
        conversation.turns = [Turn(q, Answer.model_validate_json(a), json.loads(f), c) for q, a, f, c in turns]
        return conversation

    def rename(self, conversation_id: str, title: str) -> Conversation:
        title = " ".join(title.split())[:200]
        if not title:
            raise BadRequestError("标题不能为空：give the conversation a title.")
        self._update("UPDATE conversations SET title = ?, updated = ? WHERE id = ?", (title, _now(), conversation_id))
        return self.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        self._update("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def append(self, conversation_id: str, question: str, answer: Answer, filters: dict | None = None) -> Turn:
        """Add a turn; the first one also titles a conversation that has the default title."""
        turn = Turn(question, answer, filters or {}, _now())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT title, (SELECT COUNT(*) FROM turns WHERE conversation_id = ?) "
                                       "FROM conversations WHERE id = ?", (conversation_id, conversation_id)).fetchone()
                if row is None:
                    raise _not_found(conversation_id)
                title, n = row
                self._db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)", (
                    conversation_id, n, question, answer.model_dump_json(), json.dumps(turn.filters, ensure_ascii=False),
                    turn.created))
                new_title = title_of(question) if n == 0 and title == "新对话" else title
                self._db.execute("UPDATE conversations SET title = ?, updated = ? WHERE id = ?",
                                 (new_title, turn.created, conversation_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return turn

    def replace_last(self, conversation_id: str, answer: Answer) -> Turn:
        """Put a regenerated answer in place of the last turn's."""
        conversation = self.get(conversation_id)
        if not conversation.turns:
            raise BadRequestError("这个对话还没有回答可以重新生成：ask a question first.")
        last = conversation.turns[-1]
        self._update("UPDATE turns SET answer = ? WHERE conversation_id = ? AND n = ?",
                     (answer.model_dump_json(), conversation_id, len(conversation.turns) - 1))
        return Turn(last.question, answer, last.filters, last.created)

    def _update(self, sql: str, args: tuple) -> None:
        with self._lock:
            changed = self._db.execute(sql, args).rowcount
        if not changed:
            raise _not_found(args[-1])


def _not_found(conversation_id: str) -> ConversationNotFoundError:
    return ConversationNotFoundError(
        f"没有这个对话 '{conversation_id}'：it was deleted or never made; see GET /api/conversations.")
