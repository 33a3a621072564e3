"""Stand-in for modules/sd_hijack_clip.py (v1.10.1): prompt -> 77-token chunks (tokenize_line) and the wrapper
forward that encodes chunk by chunk and hstacks them into (B, 77 * chunks, C)."""

from __future__ import annotations

import math
from collections import namedtuple

import torch
from modules import devices, prompt_parser, sd_emphasis, sd_hijack
from modules.shared import opts


class PromptChunk:
    """modules/sd_hijack_clip.py:PromptChunk -- 77 token ids, 77 multipliers, textual-inversion fixes."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.multipliers: list[float] = []
        self.fixes: list = []


PromptChunkFix = namedtuple("PromptChunkFix", ["offset", "embedding"])  # modules/sd_hijack_clip.py:PromptChunkFix


class TextConditionalModel(torch.nn.Module):
    """modules/sd_hijack_clip.py:TextConditionalModel"""

    def __init__(self) -> None:
        super().__init__()
        self.hijack = sd_hijack.model_hijack
        self.chunk_length = 75
        self.is_trainable = False
        self.input_key = "txt"
        self.return_pooled = False
        self.comma_token: int | None = None
        self.id_start: int | None = None
        self.id_end: int | None = None
        self.id_pad: int | None = None

    def empty_chunk(self) -> PromptChunk:
        """modules/sd_hijack_clip.py:TextConditionalModel.empty_chunk -- [start] + 76 x end."""
        chunk = PromptChunk()
        chunk.tokens = [self.id_start] + [self.id_end] * (self.chunk_length + 1)
        chunk.multipliers = [1.0] * (self.chunk_length + 2)
        return chunk

    def get_target_prompt_token_count(self, token_count: int) -> int:
        """modules/sd_hijack_clip.py:TextConditionalModel.get_target_prompt_token_count -- next multiple of 75."""
        return math.ceil(max(token_count, 1) / self.chunk_length) * self.chunk_length

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def encode_with_transformers(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tokenize_line(self, line: str) -> tuple[list[PromptChunk], int]:
        """modules/sd_hijack_clip.py:TextConditionalModel.tokenize_line -- emphasis fragments are tokenized
        separately; BREAK closes the chunk; a full chunk moves the tokens after a comma seen within the last
        opts.comma_padding_backtrack tokens to the next chunk; each chunk is [start] + 75 (end-padded) + [end]."""
        parsed = prompt_parser.parse_prompt_attention(line) if opts.emphasis != "None" else [[line, 1.0]]
        tokenized = self.tokenize([text for text, _ in parsed])
        chunks: list[PromptChunk] = []
        chunk = PromptChunk()
        token_count = 0
        last_comma = -1

        def next_chunk(is_last: bool = False) -> None:
            nonlocal token_count, last_comma, chunk
            token_count += len(chunk.tokens) if is_last else self.chunk_length
            to_add = self.chunk_length - len(chunk.tokens)
            if to_add > 0:
                chunk.tokens += [self.id_end] * to_add
                chunk.multipliers += [1.0] * to_add
            chunk.tokens = [self.id_start, *chunk.tokens, self.id_end]
            chunk.multipliers = [1.0, *chunk.multipliers, 1.0]
            last_comma = -1
            chunks.append(chunk)
            chunk = PromptChunk()

        for tokens, (text, weight) in zip(tokenized, parsed, strict=False):
            if text == "BREAK" and weight == -1:
                next_chunk()
                continue
            position = 0
            while position < len(tokens):
                token = tokens[position]
                if token == self.comma_token:
                    last_comma = len(chunk.tokens)
                elif (
                    opts.comma_padding_backtrack != 0
                    and len(chunk.tokens) == self.chunk_length
                    and last_comma != -1
                    and len(chunk.tokens) - last_comma <= opts.comma_padding_backtrack
                ):
                    cut = last_comma + 1
                    moved_tokens, moved_mults = chunk.tokens[cut:], chunk.multipliers[cut:]
                    chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                    next_chunk()
                    chunk.tokens, chunk.multipliers = moved_tokens, moved_mults
                if len(chunk.tokens) == self.chunk_length:
                    next_chunk()
                embedding, embedding_length_in_tokens = self.hijack.embedding_db.find_embedding_at_position(
                    tokens, position
                )
                if embedding is None:
                    chunk.tokens.append(token)
                    chunk.multipliers.append(weight)
                    position += 1
                    continue
                emb_len = int(embedding.vectors)  # textual inversion: several placeholder columns (id 0)
                if len(chunk.tokens) + emb_len > self.chunk_length:
                    next_chunk()
                chunk.fixes.append(PromptChunkFix(len(chunk.tokens), embedding))
                chunk.tokens += [0] * emb_len
                chunk.multipliers += [weight] * emb_len
                position += embedding_length_in_tokens
        if chunk.tokens or not chunks:
            next_chunk(is_last=True)
        return chunks, token_count

    def process_texts(self, texts: list[str]) -> tuple[list[list[PromptChunk]], int]:
        """modules/sd_hijack_clip.py:TextConditionalModel.process_texts -- tokenize_line per distinct text."""
        token_count = 0
        cache: dict[str, list[PromptChunk]] = {}
        batch_chunks = []
        for line in texts:
            if line in cache:
                chunks = cache[line]
            else:
                chunks, current = self.tokenize_line(line)
                token_count = max(current, token_count)
                cache[line] = chunks
            batch_chunks.append(chunks)
        return batch_chunks, token_count

    def forward(self, texts: list[str]) -> torch.Tensor:
        """modules/sd_hijack_clip.py:TextConditionalModel.forward -- chunk i of every text encoded together (texts
        with fewer chunks get empty_chunk()), results hstacked: (B, 77 * max_chunks, C)."""
        batch_chunks, _ = self.process_texts(texts)
        chunk_count = max(len(x) for x in batch_chunks)
        zs = []
        for i in range(chunk_count):
            batch_chunk = [chunks[i] if i < len(chunks) else self.empty_chunk() for chunks in batch_chunks]
            self.hijack.fixes = [x.fixes for x in batch_chunk]
            zs.append(self.process_tokens([x.tokens for x in batch_chunk], [x.multipliers for x in batch_chunk]))
        if any(x for x in texts if "(" in x or "[" in x) and opts.emphasis != "Original":
            self.hijack.extra_generation_params["Emphasis"] = opts.emphasis
        if self.return_pooled:
            return torch.hstack(zs), zs[0].pooled
        return torch.hstack(zs)

    def process_tokens(self, remade_batch_tokens: list[list[int]], batch_multipliers: list[list[float]]):
        """modules/sd_hijack_clip.py:TextConditionalModel.process_tokens -- when id_pad != id_end (SD2/OpenCLIP)
        the columns after the first id_end are set to id_pad in the tensor fed to the encoder (the chunk lists
        keep id_end); then emphasis is applied to the output."""
        tokens = torch.asarray(remade_batch_tokens).to(devices.device)
        if self.id_end != self.id_pad:
            for batch_pos in range(len(remade_batch_tokens)):
                index = remade_batch_tokens[batch_pos].index(self.id_end)
                tokens[batch_pos, index + 1 : tokens.shape[1]] = self.id_pad
        z = self.encode_with_transformers(tokens)
        pooled = getattr(z, "pooled", None)
        emphasis = sd_emphasis.get_current_option(opts.emphasis)()
        emphasis.tokens = remade_batch_tokens
        emphasis.multipliers = torch.asarray(batch_multipliers).to(devices.device)
        emphasis.z = z
        emphasis.after_transformers()
        z = emphasis.z
        if pooled is not None:
            z.pooled = pooled
        return z


class FrozenCLIPEmbedderWithCustomWordsBase(TextConditionalModel):
    """modules/sd_hijack_clip.py:FrozenCLIPEmbedderWithCustomWordsBase -- wraps the model's text encoder."""

    def __init__(self, wrapped, hijack) -> None:
        super().__init__()
        self.hijack = hijack
        self.wrapped = wrapped
        self.is_trainable = getattr(wrapped, "is_trainable", False)
        self.input_key = getattr(wrapped, "input_key", "txt")
        self.return_pooled = getattr(self.wrapped, "return_pooled", False)
        self.legacy_ucg_val = None


class FrozenCLIPEmbedderWithCustomWords(FrozenCLIPEmbedderWithCustomWordsBase):
    """modules/sd_hijack_clip.py:FrozenCLIPEmbedderWithCustomWords (SD1): HF-style tokenizer, pad id = end id."""

    def __init__(self, wrapped, hijack) -> None:
        super().__init__(wrapped, hijack)
        self.tokenizer = wrapped.tokenizer
        self.comma_token = self.tokenizer.get_vocab().get(",</w>", None)
        self.id_start = self.tokenizer.bos_token_id
        self.id_end = self.tokenizer.eos_token_id
        self.id_pad = self.id_end

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.wrapped.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def encode_with_transformers(self, tokens: torch.Tensor) -> torch.Tensor:
        """clip skip: hidden_states[-N] + final_layer_norm when CLIP_stop_at_last_layers > 1."""
        outputs = self.wrapped.transformer(input_ids=tokens, output_hidden_states=-opts.CLIP_stop_at_last_layers)
        if opts.CLIP_stop_at_last_layers > 1:
            z = outputs.hidden_states[-opts.CLIP_stop_at_last_layers]
            return self.wrapped.transformer.text_model.final_layer_norm(z)
        return outputs.last_hidden_state
