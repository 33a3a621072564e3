"""Stand-in for modules/sd_hijack.py (v1.10.1): model_hijack with the text-encoder wrapper (clip), comments,
extra_generation_params and an empty textual-inversion database."""

from __future__ import annotations

from typing import Any


class EmbeddingDatabase:
    """modules/textual_inversion/textual_inversion.py:EmbeddingDatabase -- no embeddings are ever loaded here."""

    def find_embedding_at_position(self, tokens, offset):
        return None, None

    def load_textual_inversion_embeddings(self, force_reload: bool = False) -> None:
        pass


class StableDiffusionModelHijack:
    """modules/sd_hijack.py:StableDiffusionModelHijack"""

    fixes = None
    circular_enabled = False
    clip: Any = None

    def __init__(self) -> None:
        self.extra_generation_params: dict[str, Any] = {}
        self.comments: list[str] = []
        self.embedding_db = EmbeddingDatabase()

    def hijack(self, m) -> None:
        """modules/sd_hijack.py:StableDiffusionModelHijack.hijack -- the wrapper is already in
        m.cond_stage_model (see sd_models); v1.10.1 ends with self.clip = m.cond_stage_model."""
        self.clip = m.cond_stage_model

    def undo_hijack(self, m) -> None:
        self.clip = None

    def apply_circular(self, enable: bool) -> None:
        self.circular_enabled = enable

    def clear_comments(self) -> None:
        """modules/sd_hijack.py:StableDiffusionModelHijack.clear_comments"""
        self.comments = []
        self.extra_generation_params = {}

    def get_prompt_lengths(self, text: str):
        """modules/sd_hijack.py:StableDiffusionModelHijack.get_prompt_lengths -- (tokens, multiple of 75)."""
        if self.clip is None:
            return "-", "-"
        _, token_count = self.clip.process_texts([text])
        return token_count, self.clip.get_target_prompt_token_count(token_count)


model_hijack = StableDiffusionModelHijack()
