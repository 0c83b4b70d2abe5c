"""👍/👎 on answers: an append-only JSON Lines file under data_dir that the evaluation can read.

One record a line: {"time", "rating": "up"|"down", "question", "answer", "citations",
"provider", "model", "history", "filters"}; `answer` and `citations` are those of the Answer.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from rag.schema import Answer

FILE_NAME = "feedback.jsonl"
RATINGS = ("up", "down")


class FeedbackStore:
    """Appends ratings to one JSONL file; safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> FeedbackStore:
        return cls(Path(data_dir) / FILE_NAME)

    def add(self, rating: str, question: str, answer: Answer | dict, history=None, filters=None) -> dict:
        """Append one rating and return the stored record."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {', '.join(RATINGS)}, not {rating!r}")
        data = answer.model_dump() if isinstance(answer, Answer) else dict(answer)
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "rating": rating,
            "question": question,
            "answer": data.get("answer", ""),
            "citations": data.get("citations", []),
            "refused": data.get("refused", False),
            "provider": data.get("provider", ""),
            "model": data.get("model", ""),
            "history": [list(pair) for pair in history or []],
            "filters": filters or {},
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        return record

    def read(self) -> list[dict]:
        """Every stored record, oldest first (a torn last line is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records
