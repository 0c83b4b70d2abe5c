"""The 指标库 table: every Indicator row of the live reports, kept for filtered queries.

`IndicatorTable` is the interface; `SqliteIndicators` keeps the rows in one SQLite file in the
data folder. SQLite rather than DuckDB: the stdlib has it (no new dependency, as for
rag/conversations.py), WAL lets the server read while an ingest writes, and the queries are
filters on indexed columns over a few hundred thousand rows at 100,000 chunks, where a column
store gains nothing (`fazhi bench`: indicators.* figures). A server database can replace it
behind the same methods.

The table follows the manifest as the search index does: it records the manifest version it
was written for, so whoever opens it can tell it is stale (the file deleted, an ingest that died
between the Chroma commit and this one, a table of another Indicator shape) and rebuild it from
the stored report texts. Every write is one transaction, so a failed or killed one leaves the old rows.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from rag.errors import RagError
from rag.indicators import Indicator
from rag.schema import Citation
from rag.text import fold

FILE_NAME = "indicators.sqlite3"
COLUMNS = tuple(f.name for f in fields(Indicator))
CSV_COLUMNS = (*COLUMNS, "label")  # every field, then the citation label 〔district · year · section〕
_SEARCH = "metric_search"  # fold(metric phrase + metric key): what metric words are matched in
# "+": sort the rows found, never walk the metric index for the order (4x slower at 184,000 rows)
_ORDER = "+metric_key, district, about_year, file, start"
# metrics() reads the covering "metric" index alone, not the rows (410 → 52 ms at 184,000 rows)
_INDEXES = {"file": "file", "metric": "metric_key, district, unit", "district": "district", "year": "about_year"}


@dataclass(frozen=True)
class MetricSummary:
    """One metric of the table: its key, its unit(s) ("万元/亿元" when several), rows and districts."""

    metric_key: str
    unit: str
    count: int
    districts: tuple[str, ...]

    def label(self) -> str:
        """「直接纠错率（%）· 5 条 · 3 个区县」, as the UI's metric picker shows it."""
        unit = f"（{self.unit}）" if self.unit else ""
        return f"{self.metric_key}{unit} · {self.count} 条 · {len(self.districts)} 个区县"


class IndicatorTable(Protocol):
    def replace(self, rows_by_file: Mapping[str, Sequence[Indicator]], removed_files: Iterable[str],
                manifest_version: str, base_version: str | None = None) -> None: ...
    def rebuild(self, reports: Iterable[tuple[str, Sequence[Indicator]]], manifest_version: str) -> None: ...
    def rows(self, metric_key: str | None = None, district: str | None = None, year: int | None = None,
             file: str | None = None, kind: str | None = None, metric_words: Sequence[str] = ()) -> list[Indicator]: ...
    def metrics(self) -> list[MetricSummary]: ...
    def version(self) -> str: ...


class StaleTableError(RagError):
    """The table was not at the manifest version an ingest started from: rebuild it instead."""


def citation_of(row: Indicator, n: int = 1) -> Citation:
    """The row's sentence as a Citation, so it is labelled and opened as an answer's citations are."""
    return Citation(n=n, file=row.file, district=row.district, year=row.report_year, section=row.section,
                    start=row.start, end=row.end, quote=row.sentence, page=row.page)


def value_text(row: Indicator) -> str:
    """「22.22」, or 「18.5→22.22」 for a from_to row: the figure without a trailing .0."""
    shown = f"{row.value:.12g}"
    return f"{row.from_value:.12g}→{shown}" if row.from_value is not None else shown


def to_csv(rows: Iterable[Indicator]) -> str:
    """Rows as CSV text (header CSV_COLUMNS), one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([*(getattr(row, c) for c in COLUMNS), citation_of(row).label()])
    return out.getvalue()


class SqliteIndicators:
    """Indicator rows in one SQLite file; safe to share between threads, read while another process writes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._create_rows_table()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SqliteIndicators:
        return cls(Path(data_dir) / FILE_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _create_rows_table(self) -> None:
        """The rows table with a column per Indicator field; one written by another Indicator shape is
        dropped and the version cleared, so the next reader rebuilds it."""
        wanted = [*COLUMNS, _SEARCH]
        if self._columns(self._db) == wanted:
            return
        with self._transaction() as db:
            if self._columns(db) == wanted:  # another process made it meanwhile
                return
            db.execute("DROP TABLE IF EXISTS indicators")
            db.execute(f"CREATE TABLE indicators ({', '.join(wanted)})")  # no affinity: values keep their type
            for name, columns in _INDEXES.items():
                db.execute(f"CREATE INDEX indicators_{name} ON indicators ({columns})")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', '')")

    # ---- writes: one transaction each --------------------------------------------------

    def replace(self, rows_by_file: Mapping[str, Sequence[Indicator]], removed_files: Iterable[str],
                manifest_version: str, base_version: str | None = None) -> None:
        """Put each file's rows in place of its old ones, drop removed files' rows, and record the
        manifest version, all at once. With `base_version`, StaleTableError (nothing written) when the
        table is at another version: a patch on a stale table would hide what it misses."""
        with self._transaction() as db:
            if base_version is not None and self._version(db) != base_version:
                raise StaleTableError(
                    f"indicator table at version {self._version(db)!r}, not {base_version!r}: rebuild it.")
            for file in [*rows_by_file, *removed_files]:
                db.execute("DELETE FROM indicators WHERE file = ?", (file,))
            for file, rows in rows_by_file.items():
                self._insert(db, file, rows)
            db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (manifest_version,))

    def rebuild(self, reports: Iterable[tuple[str, Sequence[Indicator]]], manifest_version: str) -> None:
        """Replace the whole table by these (file, rows), read lazily inside one transaction: readers see
        the old table until it commits, and an error from `reports` leaves it."""
        with self._transaction() as db:
            db.execute("DELETE FROM indicators")
            for file, rows in reports:
                self._insert(db, file, rows)
            db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (manifest_version,))
        with self._lock:  # else the WAL keeps the whole table's size on disk (128 MB at 100,000 chunks)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _insert(self, db: sqlite3.Connection, file: str, rows: Sequence[Indicator]) -> None:
        strays = {row.file for row in rows} - {file}
        if strays:
            raise ValueError(f"rows of {sorted(strays)} given as the rows of {file!r}")
        db.executemany(
            f"INSERT INTO indicators VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
            ([*(getattr(row, c) for c in COLUMNS), fold(f"{row.metric} {row.metric_key}")] for row in rows))

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE … COMMIT under the lock; ROLLBACK on any error, so nothing of it stays."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- reads ---------------------------------------------------------------------------

    def rows(self, metric_key: str | None = None, district: str | None = None, year: int | None = None,
             file: str | None = None, kind: str | None = None, metric_words: Sequence[str] = ()) -> list[Indicator]:
        """Rows matching every filter given, by metric, district, year and position: `year` is the year a
        figure is about; `metric_words` must each occur in the folded metric phrase or key."""
        clauses, args = [], []
        for column, value in (("metric_key", metric_key), ("district", district), ("about_year", year),
                              ("file", file), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        for word in metric_words:
            clauses.append(f"instr({_SEARCH}, ?) > 0")
            args.append(fold(word))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            found = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM indicators {where} ORDER BY {_ORDER}",
                                     args).fetchall()
        return [Indicator(*row) for row in found]

    def metrics(self) -> list[MetricSummary]:
        """One summary per metric key, most rows first."""
        with self._lock:
            found = self._db.execute(
                "SELECT metric_key, group_concat(DISTINCT unit), count(*), group_concat(DISTINCT district) "
                "FROM indicators GROUP BY metric_key ORDER BY count(*) DESC, metric_key").fetchall()
        return [MetricSummary(key, "/".join(sorted(filter(None, (units or "").split(",")))), count,
                              tuple(sorted(filter(None, (districts or "").split(",")))))
                for key, units, count, districts in found]

    def version(self) -> str:
        """The manifest version the table was last written for ("" when never written)."""
        with self._lock:
            return self._version(self._db)

    @staticmethod
    def _columns(db: sqlite3.Connection) -> list[str]:
        return [row[1] for row in db.execute("PRAGMA table_info(indicators)")]

    @staticmethod
    def _version(db: sqlite3.Connection) -> str:
        return db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]

