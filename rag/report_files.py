"""Report files on disk, shared by the HTTP API and the UI: uploads, metadata fixes, removal.

An upload is staged in <reports>.staging and ingested under its final name; the knowledge base
moves it into place once the index names its bytes, and deletes it otherwise (rag.ingest). So the
file at a report's name is always the one the index holds. An upload a killed process left half
done is settled before the next change here, or by `fazhi kb check --repair`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from rag.errors import (
    BadFileError,
    BadRequestError,
    RagError,
    ReportNotFoundError,
    UnsafePathError,
    UploadTooLargeError,
)
from rag.ingest import ReportSource, staged_path
from rag.loading import SAVE_AS_DOCX, save_as_docx
from rag.metadata import sidecar_path, write_sidecar
from rag.pipeline import Pipeline


# An upload's name in UTF-8 bytes: file systems allow 255, and ".meta.yaml.partial" (or the
# staged upload's "<pid>-<tag>-" prefix) must still fit.
MAX_NAME_BYTES = 200

logger = logging.getLogger(__name__)


def _not_found(file: str) -> ReportNotFoundError:
    return ReportNotFoundError(f"知识库中没有报告 '{file}'：see GET /api/reports for the names.")


class ReportFiles:
    """Report files on disk: uploads saved under data_dir/reports and ingested, sidecar fixes, removal."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        settings = pipeline.settings
        self.folder = settings.data_dir / "reports"
        self.seeds = settings.seeds_dir
        self.max_bytes = int(settings.server.max_upload_mb * 2**20)
        self.max_mb = settings.server.max_upload_mb
        self.extensions = settings.ingest.extensions

    def recover(self) -> None:
        """Finish or roll back the uploads that a killed process left half done (before any change here).

        Cheap when there are none. A failure (another ingest running, Chroma down) is logged:
        the next call, or `fazhi kb check --repair`, settles them.
        """
        try:
            for problem in self.pipeline.kb.recover_uploads(self.folder):
                logger.warning("settled %s: %s", problem.subject, problem.detail)
        except (RagError, OSError) as err:
            logger.warning("uploads left half done in %s not settled yet (%s)", self.folder, err)

    def check_name(self, file: str) -> str:
        """The report name unchanged, or UnsafePathError when it could leave the reports folder."""
        parts = PurePosixPath(file.replace("\\", "/")).parts if file else ()
        if not parts or "\x00" in file or file.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", file):
            raise UnsafePathError(
                f"报告名 '{file}' 不合法：不能包含 ..、绝对路径或盘符。Use a report name as listed by GET /api/reports."
            )
        return file

    def upload_name(self, filename: str | None) -> str:
        """A safe file name for an upload: no folders, odd characters replaced, a known extension.

        Shell characters, spaces and control characters become "_"; a leading "-" or "." is
        dropped (no option-like or hidden names); the name is cut to MAX_NAME_BYTES.
        """
        name = PurePosixPath(self.check_name((filename or "").strip()).replace("\\", "/")).name
        name = re.sub(r"[^\w.\-()（）·]+", "_", name).lstrip("._-")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in SAVE_AS_DOCX:
            raise save_as_docx(name, suffix)
        if suffix not in self.extensions:
            raise BadFileError(
                f"不支持的文件类型 '{suffix or filename}'：请上传 {' '.join(self.extensions)} 文件。"
            )
        stem = name[: -len(suffix)].encode()[: MAX_NAME_BYTES - len(suffix)].decode(errors="ignore")
        return (stem or "report") + suffix

    def too_large(self, name: str = "上传的文件") -> UploadTooLargeError:
        """The error for an upload over server.max_upload_mb."""
        return UploadTooLargeError(f"{name} 太大：超过上限 {self.max_mb:g} MB（server.max_upload_mb）。请拆分或压缩后再上传。")

    def add(self, filename: str | None, source: BinaryIO, progress=None) -> dict:
        """Stage an upload and ingest it under its name in the reports folder; it replaces the file
        of that name only once the index holds it, and a rejected one is not kept."""
        name = self.upload_name(filename)
        self.recover()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        staged = staged_path(path)
        size = 0
        try:
            with staged.open("wb") as out:
                while block := source.read(1 << 20):
                    size += len(block)
                    if size > self.max_bytes:
                        raise self.too_large(name)
                    out.write(block)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        summary = self.pipeline.ingest([ReportSource(name, path, staged=staged)], progress=progress)
        if name in summary.failed:
            raise summary.errors[name]
        return {"file": name, "report": self.report(name), "summary": summary.as_dict()}

    def report(self, file: str) -> dict:
        """The knowledge base's row of one report."""
        row = next((r for r in self.pipeline.reports() if r["file"] == file), None)
        if row is None:
            raise _not_found(file)
        return row

    def path_of(self, file: str) -> Path:
        """The file on disk of a report: an upload, else a seed."""
        self.check_name(file)
        self.report(file)
        for folder in (self.folder, self.seeds):
            if (folder / file).is_file():
                return folder / file
        raise ReportNotFoundError(
            f"报告 '{file}' 的原文件已不在服务器上，无法修改：upload it again (POST /api/reports), or remove it "
            f"(DELETE /api/reports/{file}).")

    def fix(self, file: str, **fields) -> dict:
        """Write the report's metadata sidecar (district, year, title, body) and ingest it again."""
        self.recover()
        path = self.path_of(file)
        write_sidecar(path, **fields)
        summary = self.pipeline.ingest([ReportSource(file, path)])
        if file in summary.failed:
            raise summary.errors[file]
        return {"file": file, "report": self.report(file), "summary": summary.as_dict()}

    def remove(self, file: str) -> None:
        """Take a report out of the index; an uploaded file is deleted too (seeds stay on disk)."""
        self.check_name(file)
        self.recover()
        try:
            self.pipeline.remove_report(file)
        except KeyError:
            raise _not_found(file) from None
        upload = self.folder / file
        if upload.is_file():
            upload.unlink()
            sidecar_path(upload).unlink(missing_ok=True)

    def passage(self, file: str, start: int, end: int, context: int = 200) -> dict:
        """The text around a citation: before, quote, after."""
        self.check_name(file)
        try:
            return self.pipeline.passage(file, start, end, context)
        except KeyError:
            raise _not_found(file) from None
        except ValueError as err:
            raise BadRequestError(str(err)) from err
