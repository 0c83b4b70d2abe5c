"""Random sequences of upload / replace / delete / rename / kill-and-restart through the upload
door (ReportFiles, as the API and the UI call it), against a model of what the knowledge base
should hold. After every step the files on disk, the manifest and the answers agree with the
model, and `kb check` finds nothing a user must act on; at the end it is clean.

A kill is a BaseException thrown at one of the ingest's writes (embedding, storing the text, a
manifest write); a restart opens the same store with new objects, as a new process would.
`tests/test_faults.py` kills real processes with SIGKILL at the same places.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rag.errors import DuplicateReportError
from rag.pipeline import Pipeline
from rag.report_files import ReportFiles
from rag.settings import load_settings
from tests.conftest import make_kb

# One report per district: its own figure, so an answer shows which version of which report spoke.
DISTRICTS = ["璧山区", "铜梁区", "潼南区", "荣昌区", "大足区", "綦江区"]
NAMES = ["a.txt", "b.txt", "c.txt", "d.md"]
KILL_POINTS = ["embedding", "text", "manifest-1", "manifest-2", "manifest-3"]
# After a kill, what the rerun or a repair collects; never anything a user must act on.
LEFT_BY_A_KILL = {"orphan_chunks", "orphan_text", "pending"}


class Killed(BaseException):
    """A process dying at a write: not an Exception, so no handler for errors catches it."""


def report_text(district: str, cases: int) -> str:
    return (
        f"{district}2024年法治政府建设情况报告\n\n"
        f"2024年，{district}扎实推进法治政府建设。\n\n"
        "一、主要举措和成效\n（一）深化行政复议改革\n"
        f"全年办理行政复议案件{cases}件，行政争议实质化解率90.1%。\n\n"
        "二、存在的不足\n基层法治人才不足。\n"
    )


def question(district: str) -> str:
    return f"{district}2024年办理行政复议案件多少件？"


class KnowledgeBaseStates(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="kb-states-"))
        self.collection = f"states-{uuid.uuid4().hex[:8]}"
        self.settings = load_settings(overrides={
            "data_dir": str(self.root / "data"), "seeds_dir": str(self.root / "seeds"),
            "llm.provider": "extractive", "retrieval.dense_weight": 0,
        })
        (self.root / "seeds").mkdir()
        self.model: dict[str, tuple[str, int]] = {}  # report name → (district, figure)
        self.killed = False
        self.restart()

    def restart(self) -> None:
        """New objects over the same data folder and Chroma store, as a new process would open."""
        kb = make_kb(self.settings.data_dir, collection=self.collection, min_free_bytes=0)
        self.pipeline = Pipeline(self.settings, kb)
        self.files = ReportFiles(self.pipeline)

    def teardown(self):
        """The sequence ends with `kb check` clean, after a repair of what a last kill left."""
        try:
            assert self.pipeline.kb_check(repair=True).ok
            assert self.pipeline.kb_check().ok
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- steps ----

    def upload(self, name: str, district: str, cases: int) -> None:
        self.files.add(name, io.BytesIO(report_text(district, cases).encode()))
        self.model[name] = (district, cases)
        self.killed = False

    def free_districts(self, keep: str | None = None) -> list[str]:
        taken = {d for n, (d, _) in self.model.items() if n != keep}
        return [d for d in DISTRICTS if d not in taken]

    @rule(name=st.sampled_from(NAMES), pick=st.integers(0, 5), cases=st.integers(100, 999))
    def upload_or_replace(self, name, pick, cases):
        free = self.free_districts(keep=name)
        self.upload(name, free[pick % len(free)], cases)

    @precondition(lambda self: self.model)
    @rule(pick=st.integers(0, 10))
    def delete(self, pick):
        name = sorted(self.model)[pick % len(self.model)]
        self.files.remove(name)
        del self.model[name]
        self.killed = False

    @precondition(lambda self: self.model and len(self.model) < len(NAMES))
    @rule(pick=st.integers(0, 10), to=st.integers(0, 10))
    def rename(self, pick, to):
        """Upload the same bytes under a free name: refused while the first name holds them; after
        removing that name it is taken (a rename)."""
        name = sorted(self.model)[pick % len(self.model)]
        free = [n for n in NAMES if n not in self.model]
        new = free[to % len(free)]
        district, cases = self.model[name]
        with pytest.raises(DuplicateReportError, match=name):
            self.files.add(new, io.BytesIO(report_text(district, cases).encode()))
        self.files.remove(name)
        del self.model[name]
        self.upload(new, district, cases)

    @rule(name=st.sampled_from(NAMES), pick=st.integers(0, 5), cases=st.integers(100, 999),
          point=st.sampled_from(KILL_POINTS))
    def upload_killed_then_restart(self, name, pick, cases, point):
        district = self.free_districts(keep=name)[pick % len(self.free_districts(keep=name))]
        kb = self.pipeline.kb
        writes = {"n": 0}

        def die(real, on_call: int = 1):
            def write(*args, **kwargs):
                writes["n"] += 1
                if writes["n"] == on_call:
                    raise Killed(point)
                return real(*args, **kwargs)
            return write

        if point == "embedding":
            kb.vectors.add_documents = die(kb.vectors.add_documents)
        elif point == "text":
            kb.store_report_texts = die(kb.store_report_texts)
        else:
            kb._commit_manifest = die(kb._commit_manifest, int(point.split("-")[1]))
        try:
            self.files.add(name, io.BytesIO(report_text(district, cases).encode()))
            self.model[name] = (district, cases)  # this ingest made fewer writes: the kill never came
            self.killed = False
        except Killed:
            row = self.pipeline.kb.manifest()["reports"].get(name)
            new_sha = hashlib.sha256(report_text(district, cases).encode()).hexdigest()
            if row is not None and row["sha256"] == new_sha:  # killed after the swap: the new version stands
                self.model[name] = (district, cases)
            self.killed = True
        self.restart()

    # ---- what must hold after every step ----

    @invariant()
    def disk_manifest_and_model_agree(self):
        reports = self.pipeline.kb.manifest()["reports"]
        assert sorted(reports) == sorted(self.model)
        for name, (district, cases) in self.model.items():
            text = report_text(district, cases)
            assert reports[name]["sha256"] == hashlib.sha256(text.encode()).hexdigest(), name
            assert (self.files.folder / name).read_text(encoding="utf-8") == text, name
        on_disk = sorted(p.name for p in self.files.folder.iterdir()) if self.files.folder.exists() else []
        assert on_disk == sorted(self.model), "only the reports the index names are kept: no staged or .previous file"

    @invariant()
    def every_report_answers_with_its_own_figure(self):
        for name, (district, cases) in self.model.items():
            answer = self.pipeline.ask(question(district))
            assert f"{cases}件" in answer.answer, (name, answer.answer)
            assert {c.file for c in answer.citations} == {name}, (name, answer.citations)

    @invariant()
    def the_check_finds_nothing_to_act_on(self):
        kinds = {p.kind for p in self.pipeline.kb_check().remaining}
        assert kinds <= (LEFT_BY_A_KILL if self.killed else set()), kinds



KnowledgeBaseStates.TestCase.settings = settings(
    max_examples=20, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
test_knowledge_base_states = KnowledgeBaseStates.TestCase
