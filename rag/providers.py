"""The answer providers: the one list every door (settings, CLI, HTTP API, UI, eval) reads.

A provider is added by adding it here and giving it a chat-model factory in
`rag.components.build_chat_model_factories` (or, without a model, an answerer in
`rag.answering.build_answerer`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    label: str        # shown in the chat UI
    uses_llm: bool    # False: answers by quoting, no model to start


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("local", "本地模型", True),
        Provider("openai", "OpenAI 兼容接口", True),
        Provider("extractive", "摘录（不用模型）", False),
    )
}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS)


def check_provider(name: str) -> str:
    """The name, or ValueError listing the providers."""
    if name not in PROVIDERS:
        raise ValueError(f"Unknown provider '{name}': choose one of {', '.join(PROVIDERS)}.")
    return name
