"""A tiny llama-architecture GGUF written from a fixed seed, for tests against real engines.

The model is random but well-formed: llama.cpp loads it, tokenizes with its
SentencePiece-style vocabulary, renders chats with its Jinja template, generates
and (with embeddings on) pools hidden states. It knows nothing, so tests must
assert protocol behaviour (counts, streaming, limits), never the words.

Two choices make generation predictable for tests:
- the output rows of the control and byte tokens are zero while word-piece
  logits spread with a standard deviation of about 3, so sampling practically
  never picks `</s>`: a request runs to `max_tokens` (finish_reason "length");
- only word pieces are ever emitted, so the text is printable ASCII.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import gguf
import numpy as np

from tests.engines.cache import cached_file, source_version

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_WORDS = """
the of and to in is was he for it with as his on be at by had are but from or
have an they which one you were her all she there would their we him been has
when who will more no if out so said what up its about into than them can only
other new some could time these two may then do first any my now such like our
over man me even most made after also did many before must through back years
where much your way well down should because each just those people how too
little state good very make world still own see men work long get here between
both life being under never day same another know while last might us great old
year off come since against go came right used take three hello model engine
token stream chat fleet spark plane answer question small fast test
"""

_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()<>|/"

_SPACE = "\u2581"  # SentencePiece's word-boundary marker


@dataclass(frozen=True)
class TinyLlamaSpec:
    """The generator's parameters; every field is part of the cache key."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx: int = 2048
    seed: int = 1234
    logit_std: float = 3.0


@dataclass(frozen=True)
class Vocab:
    """A SentencePiece ("llama") vocabulary: tokens, scores and token types, in id order."""

    tokens: list[str]
    scores: list[float]
    types: list[int]

    @property
    def generable(self) -> np.ndarray:
        """Mask of the ids the model may emit (plain word pieces)."""
        return np.array([t == gguf.TokenType.NORMAL for t in self.types])


def build_vocab() -> Vocab:
    """<unk>, <s>, </s>, the 256 byte tokens, then single characters and word prefixes."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)

    pieces: list[str] = [_SPACE, *_CHARS]
    for word in _WORDS.split():
        # Every prefix of "▁word" is a piece, so the bigram merges of llama.cpp's
        # SPM tokenizer can always grow a word from its first letter to the whole.
        marked = _SPACE + word
        pieces += [marked[:end] for end in range(2, len(marked) + 1)]
    seen = set(tokens)
    for piece in pieces:
        if piece in seen:
            continue
        seen.add(piece)
        tokens.append(piece)
        types.append(gguf.TokenType.NORMAL)
        # Longer pieces score higher, so whole words win over their parts.
        scores.append(float(len(piece)) - len(tokens) * 1e-4)
    return Vocab(tokens=tokens, scores=scores, types=[int(t) for t in types])


def _weights(spec: TinyLlamaSpec, vocab: Vocab) -> dict[str, np.ndarray]:
    """Random tensors named and shaped as llama.cpp's llama loader expects (numpy = ne reversed)."""
    rng = np.random.default_rng(spec.seed)
    head_dim = spec.n_embd // spec.n_head
    n_vocab = len(vocab.tokens)

    def dense(rows: int, cols: int, std: float | None = None) -> np.ndarray:
        scale = std if std is not None else 1.0 / np.sqrt(cols)
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    ones = np.ones(spec.n_embd, dtype=np.float32)
    output = dense(n_vocab, spec.n_embd, spec.logit_std / np.sqrt(spec.n_embd))
    output[~vocab.generable] = 0.0
    tensors = {
        "token_embd.weight": dense(n_vocab, spec.n_embd, 1.0),
        "output_norm.weight": ones.copy(),
        "output.weight": output,
    }
    for i in range(spec.n_layer):
        tensors |= {
            f"blk.{i}.attn_norm.weight": ones.copy(),
            f"blk.{i}.attn_q.weight": dense(spec.n_head * head_dim, spec.n_embd),
            f"blk.{i}.attn_k.weight": dense(spec.n_head_kv * head_dim, spec.n_embd),
            f"blk.{i}.attn_v.weight": dense(spec.n_head_kv * head_dim, spec.n_embd),
            f"blk.{i}.attn_output.weight": dense(spec.n_embd, spec.n_head * head_dim),
            f"blk.{i}.ffn_norm.weight": ones.copy(),
            f"blk.{i}.ffn_gate.weight": dense(spec.n_ff, spec.n_embd),
            f"blk.{i}.ffn_up.weight": dense(spec.n_ff, spec.n_embd),
            f"blk.{i}.ffn_down.weight": dense(spec.n_embd, spec.n_ff),
        }
    return tensors


def write_tiny_llama(path: Path, spec: TinyLlamaSpec) -> None:
    """Write the model described by `spec` to `path`."""
    vocab = build_vocab()
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name("sparkplane-tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(spec.n_ctx)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_rope_dimension_count(spec.n_embd // spec.n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(vocab.tokens))
    # Mean pooling gives one vector per input when a server runs with embeddings on.
    writer.add_pooling_type(gguf.PoolingType.MEAN)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    for name, tensor in _weights(spec, vocab).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def tiny_llama_gguf(spec: TinyLlamaSpec | None = None) -> Path:
    """Path of the cached tiny model for `spec` (default spec), writing it on first use."""
    spec = spec or TinyLlamaSpec()
    params = {"script_version": source_version(__file__), **asdict(spec)}
    return cached_file("tiny-llama", params, lambda path: write_tiny_llama(path, spec))
