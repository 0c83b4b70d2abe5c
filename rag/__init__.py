"""fazhi-qa: cited, offline question answering over rule-of-law government work reports."""

from rag.errors import RagError
from rag.schema import Answer, Citation
from rag.settings import Settings, load_settings

__all__ = ["Answer", "Citation", "Pipeline", "RagError", "Settings", "load_settings"]


def __getattr__(name: str):
    # Pipeline pulls in Chroma, LangChain and torch: import it only when asked for.
    if name == "Pipeline":
        from rag.pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
