"""fazhi-qa: cited, offline question answering over rule-of-law government work reports."""

from rag.errors import RagError
from rag.pipeline import Pipeline
from rag.schema import Answer, Citation
from rag.settings import Settings, load_settings

__all__ = ["Answer", "Citation", "Pipeline", "RagError", "Settings", "load_settings"]
