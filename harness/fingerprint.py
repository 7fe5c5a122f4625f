"""A run's fingerprint: everything that changes its result except the seed.

Runs with the same fingerprint are seeds of one setting and may be pooled (tables, plots, baselines,
`harness check`); runs whose fingerprints differ never are. The fields (flat, dotted names):

    task, data.<split>            the task and its files (path under the data folder + content hash)
    subset.*                      --max-train/eval/decode-samples, the data seed (and --heldout-samples)
    model, model.weights          the model and, where known, its weights' version (package or commit)
    method, method.options        the method and its resolved options
    optim.*                       learning rate, global batch, epochs, warmup, decay, clipping, length, ...
    decode.*                      generation: beam size, length penalty, n-gram ban, new tokens (and
                                  keep_k_open, ban_prompt_ngrams when set)
    versions.*                    major versions of torch, transformers and peft (0.x: major.minor)

Runs written before fingerprints existed get theirs from their stored config and record. Field
groups can be ignored when comparing (``--ignore versions`` checks a library upgrade: same settings,
new library; ``--ignore method`` compares two methods).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

OPTIM_KEYS = ("learning_rate", "epochs", "warmup_ratio", "warmup_steps", "weight_decay", "max_grad_norm",
              "max_seq_length", "mixed_precision", "label_smoothing", "group_by_length", "quantize")
SUBSET_KEYS = ("max_train_samples", "max_eval_samples", "max_decode_samples", "data_seed")
# Training flags that draw dropout from another random stream (a seed's results change): recorded only
# when set, so runs without them keep their fingerprint ids.
RANDOM_STREAM_FLAGS = ("fast_dropout", "padding_free")
DECODE_KEYS = ("num_beams", "length_penalty", "no_repeat_ngram_size", "max_new_tokens")
DECODE_RULES = ("keep_k_open", "ban_prompt_ngrams")  # generate's rules: fields only when set (older ids kept)
LIBRARIES = ("torch", "transformers", "peft")
# Fields that differ between two methods compared with each other (the check ignores them then).
METHOD_FIELDS = ("method", "method.options", "optim.learning_rate")
RECORDED_LATER = {"model.weights"}
DEFAULTS = {"max_train_samples": None, "max_eval_samples": None, "max_decode_samples": None, "data_seed": 0,
            "warmup_steps": None, "weight_decay": 0.0, "max_grad_norm": 1.0, "mixed_precision": "no",
            "label_smoothing": 0.0, "group_by_length": False, "quantize": None, "warmup_ratio": 0.06}


@lru_cache(maxsize=256)
def _file_hash(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def file_hash(path: str | os.PathLike) -> str | None:
    """sha1 (12 hex) of a data file's content, or None when it is not a readable file (a hub split)."""
    try:
        stat = os.stat(path)
    except (OSError, TypeError):
        return None
    return _file_hash(str(Path(path).resolve()), stat.st_size, stat.st_mtime) if Path(path).is_file() else None


def examples_digest(examples) -> str:
    """sha1 (12 hex) of the examples a run used, in order: it tells apart subsets and held-out
    slices of one file, and hub splits, which a file hash cannot."""
    digest = hashlib.sha1()
    for example in examples:
        digest.update(repr(example).encode() + b"\n")
    return digest.hexdigest()[:12]


def data_key(eval_split: str) -> str:
    """The record's name for an evaluation split ('' is the dev set): 'eval', 'eval_m', 'eval_loss'."""
    return f"eval_{eval_split}" if eval_split else "eval"


def data_name(origin: str, data_dir: str | None) -> str:
    """A data file's name independent of where it is read from: its path under the data folder, or
    its file name (`harness run csv` files; the content hash beside it tells files apart)."""
    if origin.startswith("hub:"):
        return origin
    if data_dir:
        try:
            return Path(os.path.relpath(origin, data_dir)).as_posix()
        except ValueError:
            pass
    return Path(origin).name


def data_fields(origins: dict[str, str], data_dir: str | None, hashes: dict[str, str] | None = None) -> dict:
    """data.<split>: '<name>#<hash>' (the hash recorded by the run, else computed now if readable)."""
    fields = {}
    for split, origin in sorted(origins.items()):
        digest = (hashes or {}).get(split) or file_hash(origin)
        fields[f"data.{split}"] = data_name(origin, data_dir) + (f"#{digest}" if digest else "")
    return fields


def major(version: str | None) -> str | None:
    if not version:
        return None
    parts = version.split("+")[0].split(".")
    return parts[0] if parts[0] != "0" else ".".join(parts[:2])


def fingerprint(config: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint fields of a run from its config.json and metrics.json (see the docstring)."""
    def setting(key):
        return config.get(key, DEFAULTS.get(key))

    fields: dict[str, Any] = {"task": record.get("task") or config.get("task"), "model": config.get("model"),
                              "method": config.get("method"), "method.options": config.get("method_options") or {}}
    if record.get("model_weights"):
        fields["model.weights"] = record["model_weights"]
    fields.update(data_fields(record.get("data") or {}, config.get("data_dir"), record.get("data_hashes")))
    fields.update({f"subset.{k}": setting(k) for k in SUBSET_KEYS})
    if config.get("heldout_samples"):  # only when set: older runs keep their fingerprint ids
        fields["subset.heldout_samples"] = config["heldout_samples"]
    fields.update({f"optim.{k}": setting(k) for k in OPTIM_KEYS})
    batch = record.get("global_batch_size") or (config.get("batch_size", 16) * config.get("grad_accum", 1))
    fields["optim.global_batch_size"] = batch
    fields["optim.init_from"] = bool(config.get("init_from"))  # its path names the seed's own run
    for flag in RANDOM_STREAM_FLAGS:  # only when set: older ids are kept
        if config.get(flag):
            fields[f"optim.{flag}"] = True
    if config.get("select_on", "dev") != "dev":  # only when set: older runs keep their fingerprint ids
        fields["optim.select_on"] = config["select_on"]
    if config.get("patience"):
        fields["optim.patience"] = config["patience"]
    if record.get("decode"):
        fields.update({f"decode.{k}": record["decode"].get(k) for k in DECODE_KEYS})
        fields.update({f"decode.{rule}": True for rule in DECODE_RULES if record["decode"].get(rule)})
    versions = record.get("versions") or {}
    fields.update({f"versions.{lib}": major(versions.get(lib)) for lib in LIBRARIES if versions.get(lib)})
    return fields


def fields_set_by(keys) -> tuple[str, ...]:
    """The fingerprint fields that these RunConfig keys set: what a suite entry's declared override
    (init_from, epochs, batch_size, ...) legitimately changes against the reference."""
    out = []
    for key in keys:
        if key in SUBSET_KEYS or key == "heldout_samples":
            out.append(f"subset.{key}")
        elif key in OPTIM_KEYS or key in ("init_from", "select_on", "patience", *RANDOM_STREAM_FLAGS):
            out.append(f"optim.{key}")
        elif key in ("batch_size", "grad_accum"):
            out.append("optim.global_batch_size")
        elif key in DECODE_KEYS:
            out.append(f"decode.{key}")
    return tuple(out)


def _selected(name: str, ignore) -> bool:
    """Whether ``ignore`` (field names or group prefixes such as 'versions', 'data', 'optim') covers a field."""
    return any(name == key or name.startswith(key + ".") for key in ignore)


def fingerprint_id(fields: dict[str, Any], ignore=()) -> str:
    """A short id of the fields (``ignore``'s left out). Fields only newer runs record are left out too,
    so an old run and a new run of one setting share the id; ``differences`` still compares them."""
    kept = {k: v for k, v in fields.items() if not _selected(k, ignore) and k not in RECORDED_LATER}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def same_value(a, b) -> bool:
    """Equal, where a data file known only by name (an old run) matches the same name with a hash."""
    if isinstance(a, str) and isinstance(b, str) and ("#" in a) != ("#" in b):
        return a.split("#")[0] == b.split("#")[0]
    return a == b


def differences(a: dict[str, Any], b: dict[str, Any], ignore=()) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ (ignored fields left out): name -> (value in a, value in b). A field
    that only newer runs record (model.weights) counts as unknown, not different, when one side lacks it."""
    names = sorted(set(a) | set(b))
    return {n: (a.get(n), b.get(n)) for n in names if not _selected(n, ignore)
            and not (n in RECORDED_LATER and (n not in a or n not in b)) and not same_value(a.get(n), b.get(n))}


def describe(diffs: dict[str, tuple[Any, Any]], limit: int = 4) -> str:
    """'optim.learning_rate 0.003 vs 3e-05, subset.max_train_samples 2000 vs 200'."""
    shown = [f"{name} {left} vs {right}" for name, (left, right) in list(diffs.items())[:limit]]
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return ", ".join(shown) + more
