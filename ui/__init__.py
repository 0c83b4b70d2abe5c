"""The Gradio chat UI of fazhi-qa (mounted at "/" by rag.api.create_app) and the load check."""
