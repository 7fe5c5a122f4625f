"""The objective of data-to-text tasks with causal LMs (E2E, WebNLG, DART, and any generation task
YAML): an (input, reference) pair becomes prompt + target with the loss on the target tokens only
(label smoothing as the paper's), the dev loss after each epoch, and after the last epoch the test
inputs decoded with beam search (harness.tasks.decoding) and scored by the task's scorer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.models import load_for_causal_lm
from harness.tasks.base import GenerationExample, Split, first, hold_out, subsample
from harness.tasks.decoding import DecodeSettings, decode, prompt_of
from harness.tasks.objective import Data, EvalContext, Evaluation, pad_multiple


def encode_pair(tokenizer, source: str, reference: str, max_length: int) -> dict[str, list[int]]:
    """Token ids of prompt + target + eos, with labels only on the target (and eos)."""
    prompt = tokenizer(prompt_of(source), add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + reference, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + target)[:max_length]
    labels = ([-100] * len(prompt) + target)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def one_pair_each(split):
    """A grouped generation split as one example per (input, reference): what training sees."""
    return Split([GenerationExample(e.source, (ref,), e.subset) for e in split.examples for ref in e.references],
                 split.origin)


def encode_pairs(split, tokenizer, max_length: int) -> list[dict[str, list[int]]]:
    """One training row per (input, reference) of a grouped generation split."""
    return [encode_pair(tokenizer, e.source, ref, max_length) for e in split.examples for ref in e.references]


class PairCollator:
    """Right-pads a batch of encode_pair rows (labels with -100)."""

    def __init__(self, pad_token_id: int, multiple_of: int | None = None):
        self.pad, self.multiple_of = pad_token_id, multiple_of

    def __call__(self, rows):
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        if self.multiple_of:
            width = -(-width // self.multiple_of) * self.multiple_of
        def pad(key, value):
            return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])
        return {"input_ids": pad("input_ids", self.pad), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", -100)}


def lm_loss(model, batch, label_smoothing: float = 0.0):
    """Mean cross-entropy over the target tokens (next-token prediction), with label smoothing.

    Logits are computed only at the positions that predict a target token of some row (the model's
    ``logits_to_keep``): the vocabulary projection of the prompt positions is never needed, and at
    49,152 tokens (SmolLM2) it is most of the loss's memory. Positions count from the end, so the
    positions a prefix method prepends do not shift them."""
    import torch.nn.functional as F

    labels = batch["labels"]
    length = labels.shape[1]
    positions = (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)  # logits here predict labels[:, p + 1]
    from_end = positions - length
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    try:
        logits = model(**inputs, logits_to_keep=from_end).logits
    except TypeError:  # a model without logits_to_keep: every position, then the same ones
        logits = model(**inputs).logits[:, from_end]
    if logits.shape[1] != len(positions):  # the model ignored logits_to_keep
        logits = logits[:, from_end]
    return F.cross_entropy(logits.flatten(0, 1).float(), labels[:, positions + 1].flatten(),
                           ignore_index=-100, label_smoothing=label_smoothing)


def write_generations(path, examples, hypotheses) -> None:
    """One JSON line per input: its source, the generated text and its references."""
    with open(path, "w", encoding="utf-8") as handle:
        for index, (example, hypothesis) in enumerate(zip(examples, hypotheses)):
            row: dict[str, Any] = {"index": index, "source": example.source, "hypothesis": hypothesis,
                                   "references": list(example.references)}
            if example.subset:
                row["subset"] = example.subset
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_hypotheses(path) -> tuple[list[str], list[str] | None]:
    """(hypotheses, sources or None) from a plain text file (one output per line, as e2e-metrics and
    the WebNLG script read them) or a JSON-lines file of rows with 'hypothesis' (this harness's
    generations*.jsonl, whose 'source' fields are checked against the task's inputs)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"outputs file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return text.splitlines(), None
    hypotheses, sources = [], []
    for line, row in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(row)
            hypotheses.append(str(record["hypothesis"]))
            sources.append(record.get("source"))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise HarnessError(f"{path}:{line}: expected a JSON object with a 'hypothesis' field.") from None
    return hypotheses, sources


def score_file(task, path, data_dir=None, split: str | None = None, first_n: int | None = None,
               metrics=None) -> dict[str, float]:
    """Score an outputs file against a generation task's references, as `harness run` scores its own."""
    if task.kind != "generation":
        raise HarnessError(f"task '{task.name}' is not a generation task; `harness score` scores generated text.")
    split = split or next(iter(task.eval_splits.values()))
    examples = task.load(split, data_dir).examples
    if first_n is not None:
        examples = examples[:first_n]
    hypotheses, sources = read_hypotheses(path)
    if len(hypotheses) != len(examples):
        raise HarnessError(
            f"{path}: {len(hypotheses)} outputs, but the {split} split of {task.name} has {len(examples)} inputs"
            f"{' (--first ' + str(first_n) + ')' if first_n else ''}; give one output per line, in the order of "
            f"the task's inputs (use --first N when only the first N were decoded)."
        )
    if sources is not None:
        for line, (given, example) in enumerate(zip(sources, examples), 1):
            if given is not None and given != example.source:
                raise HarnessError(f"{path}:{line}: the output is for input {given[:60]!r}, but input {line} of "
                                   f"{task.name}/{split} is {example.source[:60]!r}; the order differs.")
    return task.score(hypotheses, examples, metrics)


def decode_settings(config, task) -> DecodeSettings:
    penalty = config.length_penalty if config.length_penalty is not None else task.decode_defaults.get(
        "length_penalty", 1.0)
    return DecodeSettings(num_beams=config.num_beams, length_penalty=penalty,
                          no_repeat_ngram_size=config.no_repeat_ngram_size, max_new_tokens=config.max_new_tokens,
                          batch_size=config.decode_batch_size, keep_k_open=config.keep_k_open,
                          ban_prompt_ngrams=config.ban_prompt_ngrams)


def mean_target_loss(accelerator, model, loader, progress: bool = True) -> float:
    """Mean target-token loss (no label smoothing) over a loader of encode_pair rows, all processes."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    bar = tqdm(loader, desc="dev loss", unit="batch", disable=not (progress and accelerator.is_main_process),
               dynamic_ncols=True)
    with torch.no_grad():
        for batch in bar:
            targets = int((batch["labels"][:, 1:] != -100).sum())
            total += torch.tensor([lm_loss(model, batch).item() * targets, targets], dtype=torch.float64,
                                  device=accelerator.device)
    total = accelerator.reduce(total, "sum")
    return (total[0] / total[1].clamp(min=1)).item()


def decode_sharded(ctx: EvalContext, splits: dict[str, Split]) -> dict[str, list[str]]:
    """The decoded text of every split's inputs; each process decodes every world_size-th input."""
    from accelerate.utils import gather_object

    settings = decode_settings(ctx.config, ctx.task)
    network = ctx.accelerator.unwrap_model(ctx.model, keep_torch_compile=False)
    rank, world = ctx.accelerator.process_index, ctx.accelerator.num_processes
    outputs = {}
    for suffix, split in splits.items():
        mine = list(range(rank, len(split.examples), world))
        texts = decode(network, ctx.tokenizer, [split.examples[i].source for i in mine], settings,
                       progress=ctx.progress and ctx.accelerator.is_main_process, desc=f"decoding {ctx.task.name}")
        pieces = gather_object(list(zip(mine, texts))) if world > 1 else list(zip(mine, texts))
        outputs[suffix] = [text for _, text in sorted(pieces)]
    return outputs


def score_on_main(ctx: EvalContext, splits: dict[str, Split], outputs: dict[str, list[str]]) -> dict[str, float]:
    """Score on the main process (the jar-based metrics start Java once) and share the result."""
    from accelerate.utils import broadcast_object_list

    result: list[Any] = [None]
    if ctx.accelerator.is_main_process:
        try:
            result[0] = {(f"{k}_{suffix}" if suffix else k): v for suffix, split in splits.items()
                         for k, v in ctx.task.score(outputs[suffix], split.examples, ctx.config.metrics).items()}
        except HarnessError as err:
            raise HarnessError(f"{err} The outputs are saved in {ctx.run.path}/generations*.jsonl and the weights in "
                               f"{ctx.run.weights}; score them later with `harness score`.") from None
    if ctx.accelerator.num_processes > 1:
        broadcast_object_list(result)
    return result[0]


class GenerationObjective:
    """Decoding costs more than an epoch of training, so only the last epoch is decoded and scored
    (as microsoft/LoRA decodes its last checkpoint); earlier epochs report the dev loss."""

    def load_model(self, spec, task, config):
        model, tokenizer = load_for_causal_lm(spec, config.data_dir, config.quantize, config.trust_remote_code)
        return model, tokenizer, []  # the LM head is pretrained: no method trains it, tied or not

    def load_data(self, task, config) -> Data:
        if config.metrics:
            task.check_metrics(config.metrics)
        if config.select_on != "dev":
            raise HarnessError(f"--select-on {config.select_on}: generation tasks decode once, after the last epoch "
                               f"(as the paper does); use --heldout-samples alone to score on held-out inputs.")
        train, held = Split([], "none (--epochs 0)"), None
        if config.epochs or config.heldout_samples:
            # Held out by input (an MR with all its references), so no held-out input is trained on.
            train, held = hold_out(task.load(task.train_split, config.data_dir), config.heldout_samples,
                                   config.data_seed)
            train = subsample(one_pair_each(train), config.max_train_samples, config.data_seed)
        if held is None:
            dev = task.load(task.loss_split, config.data_dir)
            tests = {suffix: task.load(split, config.data_dir) for suffix, split in task.eval_splits.items()}
        else:  # the held-out inputs replace both the dev set (loss) and the test set(s) (decoding)
            dev, tests = held, {next(iter(task.eval_splits)): held}
        dev = subsample(one_pair_each(dev), config.max_eval_samples, config.data_seed)
        tests = {suffix: first(split, config.max_decode_samples) for suffix, split in tests.items()}
        return Data(train if config.epochs else Split([], "none (--epochs 0)"), {"loss": dev, **tests})

    def batched_evals(self, data: Data) -> dict[str, Split]:
        return {"loss": data.evals["loss"]}

    def encode(self, split: Split, tokenizer, config) -> list[dict[str, list[int]]]:
        return encode_pairs(split, tokenizer, config.max_seq_length)

    def collate(self, tokenizer, config):
        return PairCollator(tokenizer.pad_token_id, pad_multiple(config))

    def loss(self, model, batch, config):
        return lm_loss(model, batch, config.label_smoothing)

    def evaluate(self, ctx: EvalContext, epoch: int, last: bool) -> Evaluation:
        metrics = {"dev_loss": mean_target_loss(ctx.accelerator, ctx.model, ctx.loaders["loss"], ctx.progress)}
        if not last:
            return Evaluation(metrics)
        ctx.save_weights()  # first: a failure while decoding or scoring must not lose the training
        splits = {suffix: split for suffix, split in ctx.data.evals.items() if suffix != "loss"}
        if not any(split.examples for split in splits.values()):  # --max-decode-samples 0: the loss only
            return Evaluation(metrics)
        outputs = decode_sharded(ctx, splits)
        if ctx.accelerator.is_main_process:
            self.write_outputs(ctx.run, ctx.data, outputs)
        metrics.update(score_on_main(ctx, splits, outputs))
        return Evaluation(metrics)  # the outputs are written already (before scoring, which may fail)

    def write_outputs(self, run, data: Data, outputs) -> None:
        for suffix, hypotheses in outputs.items():
            write_generations(run.generations(suffix), data.evals[suffix].examples, hypotheses)

    def describe(self, task, config) -> dict[str, Any]:
        return {"decode": decode_settings(config, task).__dict__}


GENERATION = GenerationObjective()
