"""The configuration of one run. Every field is a `harness run` flag (`--field-name`) and a YAML key;
the CLI builds its options from this dataclass, so the two cannot drift apart."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError, check_keys

MIXED_PRECISION = ("no", "fp16", "bf16")
DATA_DIR_ENV = "HARNESS_DATA_DIR"  # the data folder when --data-dir is not given


def _f(default, help, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class RunConfig:
    # What to run
    task: str = _f("glue/sst2", "task name (see `harness tasks`), 'csv' for --train-file/--eval-file, or a task YAML path", positional=True)
    model: str = _f("minilm-l6", "model preset (see `harness models`), hub id or local folder")
    method: str = _f("lora", "fine-tuning method (see `harness methods`)")
    method_options: dict[str, Any] = _f(None, "method settings, e.g. {'r': 8}; on the CLI: --lora-r 8", cli=False)
    # Data
    data_dir: str | None = _f(None, f"folder with the data files (GLUE layout: <dir>/glue/<TASK>/*.tsv); default ${'HARNESS_DATA_DIR'}, else the hub")
    include_tasks: list[str] = _f(None, "extra folders of task YAML files", nargs="+")
    train_file: str | None = _f(None, "task 'csv': training file (.csv, .tsv, .jsonl, .json)")
    eval_file: str | None = _f(None, "task 'csv': evaluation file")
    text_column: str = _f("text", "task 'csv': column with the text")
    text_pair_column: str | None = _f(None, "task 'csv': second text column for sentence-pair tasks")
    label_column: str = _f("label", "task 'csv': column with the label")
    task_type: str = _f("classification", "task 'csv': classification or regression", choices=("classification", "regression"))
    labels: list[str] = _f(None, "task 'csv': label values in class-id order (default: sorted values of the train file)", nargs="+")
    max_train_samples: int | None = _f(None, "use a random subset of this many training examples (fixed by --data-seed)", positive=True)
    max_eval_samples: int | None = _f(None, "use a random subset of this many evaluation examples", positive=True)
    heldout_samples: int | None = _f(None, "hold this many training examples out (fixed by --data-seed) and evaluate on "
                                           "them instead of the dev/test sets: choose settings without touching "
                                           "the reported sets", positive=True)
    select_on: str = _f("dev", "choose the best epoch (and stop early) on: dev, the paper's practice, or heldout: the "
                               "--heldout-samples slice of the training data, evaluated beside the dev set, which "
                               "is then only reported (classification tasks)", choices=("dev", "heldout"))
    data_seed: int = _f(0, "seed of the --max-*-samples subsets (kept apart from --seed so seeds share data)")
    init_from: str | None = _f(None, "start from the method weights of a finished run (its folder or weights/); "
                                     "its task head is not taken (the paper's MRPC/RTE/STS-B from MNLI)")
    group_by_length: bool = _f(False, "batch training examples of similar length together (less padding, faster)")
    max_seq_length: int = _f(128, "truncate inputs to this many tokens (batches are padded dynamically)", positive=True)
    # Optimisation
    seed: int = _f(42, "random seed for initialisation, dropout and data order")
    epochs: int = _f(3, "training epochs; each ends with an evaluation, the best epoch is reported (0: evaluate the "
                        "untrained model only)", nonnegative=True)
    batch_size: int = _f(16, "training batch size per device (global = this x processes x grad accumulation)", positive=True)
    eval_batch_size: int = _f(64, "evaluation batch size per device", positive=True)
    learning_rate: float | None = _f(None, "peak learning rate (default: the model's or the method's default)", positive=True)
    patience: int | None = _f(None, "stop when the epoch-selection metric (see --select-on) has not improved for this "
                                    "many epochs; --epochs is then the budget", positive=True)
    weight_decay: float = _f(0.0, "AdamW weight decay (not applied to biases and LayerNorm)", nonnegative=True)
    warmup_ratio: float = _f(0.06, "linear warmup over this fraction of the steps (the paper's 0.06)", nonnegative=True)
    warmup_steps: int | None = _f(None, "linear warmup steps; overrides --warmup-ratio", nonnegative=True)
    grad_accum: int = _f(1, "gradient accumulation steps", positive=True)
    max_grad_norm: float = _f(1.0, "clip the gradient norm to this (0 disables clipping)", nonnegative=True)
    mixed_precision: str = _f("no", "mixed precision: no, fp16 (CUDA) or bf16", choices=MIXED_PRECISION)
    cast_frozen_once: bool = _f(True, "mixed precision: cast each frozen linear layer's weights to the low precision once "
                                      "per epoch, not at every step (the same numbers as autocast; off: for comparisons)")
    fast_dropout: bool = _f(False, "draw dropout masks (the attention probabilities' too) 4 elements per random draw: "
                                   "faster on a CPU, a keep probability exact to 1/32768, but not torch's random "
                                   "stream (a seed's results change)")
    padding_free: bool = _f(False, "encoders (BERT, RoBERTa): run the layers on the batch's real tokens only, padded "
                                   "back around attention (training and evaluation): the same numbers up to rounding, "
                                   "but dropout draws fewer masks, so a seed's results change")
    compile: bool = _f(False, "torch.compile the whole model (inductor, dynamic shapes); the compiled code is cached "
                              "across runs")
    trust_remote_code: bool = _f(False, "allow a hub model's own Python code to run (off: only transformers' code runs)")
    quantize: str | None = _f(None, "load the frozen backbone in 8bit or 4bit (NF4) with bitsandbytes, QLoRA-style, "
                                    "for LoRA and peft methods (a CPU: 4bit only)", choices=("8bit", "4bit"))
    label_smoothing: float = _f(0.0, "generation: label smoothing of the target-token loss (the paper's 0.1 for E2E/WebNLG)", nonnegative=True)
    # Decoding (generation tasks): after the last epoch the model decodes the test inputs, which are scored
    num_beams: int = _f(10, "generation: beam size (the paper's 10; 1 is greedy, for quick CPU runs)", positive=True)
    length_penalty: float | None = _f(None, "generation: beam score = log p / length ** this (default: the task's, "
                                            "the paper's 0.9 for E2E, 0.8 for WebNLG/DART)")
    no_repeat_ngram_size: int = _f(4, "generation: never repeat an n-gram of this size within the output (0: off)", nonnegative=True)
    max_new_tokens: int = _f(64, "generation: at most this many generated tokens per input", positive=True)
    keep_k_open: bool = _f(False, "generation: a hypothesis that stops gives its beam slot to the next candidate, so "
                                  "k beams stay open (transformers' generate; default: the slot closes, as the "
                                  "paper's decoder)")
    ban_prompt_ngrams: bool = _f(False, "generation: the n-gram ban counts the prompt's n-grams too (transformers' "
                                        "generate; default: only the generated tokens', as the paper's decoder)")
    decode_batch_size: int = _f(16, "generation: inputs decoded together (each takes --num-beams rows)", positive=True)
    max_decode_samples: int | None = _f(None, "generation: decode and score only the first N test inputs (0: decode "
                                              "nothing, report the dev loss only)", nonnegative=True)
    metrics: list[str] = _f(None, "generation: compute only these metrics (e.g. bleu nist rouge_l cider without Java)", nargs="+")
    # Output and tracking
    output_dir: str = _f("results", "results folder; each run writes <output-dir>/runs/<run-name>/")
    run_name: str | None = _f(None, "run name (default: task-method-model-seed-time)")
    tracking_uri: str | None = _f(None, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db); 'none' disables MLflow")
    experiment: str = _f("harness", "MLflow experiment name")
    checkpoint_every: int | None = _f(None, "also checkpoint every this many optimizer steps (a checkpoint is always "
                                            "written at the end of each epoch)", positive=True)
    resume: bool = _f(False, "continue the run named by --run-name from its last checkpoint (starts afresh if it has none)")
    save_weights: bool = _f(True, "save the trained weights (the adapter, or the full model) of the best epoch")
    log_every: int = _f(10, "log the training loss every this many optimizer steps", positive=True)

    def __post_init__(self):
        self.method_options = dict(self.method_options or {})
        self.validate()

    def validate(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            flag = "--" + item.name.replace("_", "-")
            if value is None:
                continue
            if item.metadata.get("positive") and (not isinstance(value, (int, float)) or value <= 0):
                raise HarnessError(f"{flag} must be a positive number, got {value!r}.")
            if item.metadata.get("nonnegative") and (not isinstance(value, (int, float)) or value < 0):
                raise HarnessError(f"{flag} must be zero or a positive number, got {value!r}.")
            if "choices" in item.metadata and value not in item.metadata["choices"]:
                raise HarnessError(f"{flag} must be one of {', '.join(item.metadata['choices'])}, got {value!r}.")
        if self.label_smoothing >= 1:
            raise HarnessError(f"--label-smoothing must be below 1, got {self.label_smoothing}.")
        if self.select_on == "heldout" and not self.heldout_samples:
            raise HarnessError("--select-on heldout needs --heldout-samples N: the training examples to choose the "
                               "epoch on.")
        if self.warmup_ratio >= 1:
            raise HarnessError(f"--warmup-ratio must be below 1, got {self.warmup_ratio}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> RunConfig:
        check_keys(values, (f.name for f in dataclasses.fields(cls)), where)
        return cls(**values)

    @classmethod
    def of_run(cls, stored: dict[str, Any], where: str = "config.json") -> RunConfig:
        """The config of a finished run from its config.json (which also records derived keys)."""
        return cls.from_dict(cls.fields_of_run(stored), where)

    @classmethod
    def fields_of_run(cls, stored: dict[str, Any]) -> dict[str, Any]:
        """A run's config.json without the keys it only records (label names, its MLflow run id)."""
        return {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolved_tracking_uri(config: RunConfig) -> str | None:
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    return None if uri.lower() == "none" else uri


def read_yaml_mapping(path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (experiment, suite): its content, or a one-line error."""
    from pathlib import Path

    import yaml

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{what} '{path}' does not exist.")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise HarnessError(f"{path}: invalid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(spec, dict):
        raise HarnessError(f"{path}: an {what} must be a mapping.")
    return spec
