"""Smoke models: ``smoke:<model>`` is a small random model of ``<model>``'s architecture, for checking
that a setting runs end to end (`harness grid FILE --smoke`) without the model's weights.

It is built (harness.models.smoke_spec) from the model's own config (a preset's, or the config.json of a
model shipped in a package) with the same ``model_type``, so the same classes and module names:
RoBERTa's ``query``/``value``, DeBERTa-v2's ``query_proj``/``value_proj`` and relative attention,
GPT-2's fused Conv1D ``c_attn``, the blocks and projections adapters go into. Every architecture setting
is kept (vocabulary size, positions, relative-position buckets, layer-norm epsilon, special-token ids)
except depth and width, which shrink to ``SHAPE``. Weights are random; nothing is downloaded.

Tokenizers, offline (``TOKENIZERS``): GPT-2 uses its own BPE files from the data folder; RoBERTa the
same byte-level BPE in RoBERTa's layout (``<s> <pad> </s> <unk>`` as ids 0-3, as its config says,
``<mask>`` last; other tokens' ids differ from RoBERTa's, which a random model cannot tell).
DeBERTa-v2's SentencePiece model is not available offline, so it uses the MiniLM WordPiece vocabulary
(the same ``[CLS] a [SEP] b [SEP]`` format and pad id 0, 30,522 of its 128,100 ids). Other models (e.g.
one shipped in a package, or a local folder) keep their own tokenizer.
"""

from __future__ import annotations

PREFIX = "smoke:"
# Depth and width of a smoke model: 2 blocks of width 32 (2 heads of 16), feed-forward 64.
SHAPE = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
# model_type -> the offline tokenizer of its smoke model (harness.models.load_tokenizer's kinds).
TOKENIZERS = {"gpt2": "gpt2-data-dir", "roberta": "roberta-data-dir", "deberta-v2": "minilm-package",
              "bert": "minilm-package"}
# Config keys that are not architecture (or contradict a new task head) when read from a config.json.
_NOT_ARCHITECTURE = {"architectures", "transformers_version", "_name_or_path", "id2label", "label2id", "torch_dtype",
                     "dtype", "quantization_config", "auto_map", "num_labels", "problem_type"}


def is_smoke(name: str | None) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def real_model(name: str) -> str:
    """The model a smoke model stands for: 'smoke:roberta-base' -> 'roberta-base'."""
    return name.removeprefix(PREFIX)


def smoke_name(name: str) -> str:
    return name if is_smoke(name) else PREFIX + name


def shrunk(model_type: str, values: dict) -> dict:
    """``values`` (a config's keyword arguments) with depth and width set to SHAPE, under the names this
    model type uses (GPT-2: n_layer, n_embd, n_head, n_inner)."""
    from transformers import CONFIG_MAPPING

    config_class = CONFIG_MAPPING[model_type]
    names = config_class.attribute_map
    defaults = config_class()
    out = dict(values)
    for generic in ("num_hidden_layers", "hidden_size", "num_attention_heads"):
        out[names.get(generic, generic)] = SHAPE[generic]
    inner = names.get("intermediate_size", "intermediate_size")
    out[inner if hasattr(defaults, inner) else "n_inner"] = SHAPE["intermediate_size"]
    heads, width = SHAPE["num_attention_heads"], SHAPE["hidden_size"]
    # Sizes some configs state apart from the width (None or absent: derived from it).
    for key, value in [("attention_head_size", width // heads), ("head_dim", width // heads),
                       ("embedding_size", width), ("pooler_hidden_size", width), ("num_key_value_heads", heads)]:
        if out.get(key) is not None:
            out[key] = value
    return out


def architecture_values(config) -> dict:
    """A loaded config's keyword arguments that describe the architecture (model_type included)."""
    return {k: v for k, v in config.to_diff_dict().items() if k not in _NOT_ARCHITECTURE}
