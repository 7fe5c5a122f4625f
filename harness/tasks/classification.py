"""The objective of classification and regression tasks (GLUE, task YAML files, csv): a fresh head
on an encoder, cross-entropy or MSE from the model itself, metrics from argmax or the scalar output,
per-example predictions of the best epoch."""

from __future__ import annotations

import json
from typing import Any

from harness.errors import HarnessError
from harness.models import load_for_classification
from harness.models.heads import head_module_names
from harness.tasks.base import Split, hold_out, subsample
from harness.tasks.objective import HELDOUT, Data, EvalContext, Evaluation, in_split_order, pad_multiple


class ClassificationObjective:
    def __init__(self, regression: bool):
        self.regression = regression

    def load_model(self, spec, task, config):
        problem = "regression" if self.regression else "single_label_classification"
        model, tokenizer = load_for_classification(spec, task.num_labels, problem, config.data_dir, config.quantize,
                                                   config.trust_remote_code)
        return model, tokenizer, head_module_names(model)

    def load_data(self, task, config) -> Data:
        if config.metrics:
            raise HarnessError("--metrics selects generation metrics; a classification task reports all of its metrics.")
        train, evals = Split([], "none (--epochs 0)"), task.eval_splits
        if config.epochs or config.heldout_samples:
            train, held = hold_out(task.load(task.train_split, config.data_dir), config.heldout_samples,
                                   config.data_seed)
            train = subsample(train, config.max_train_samples, config.data_seed)
            if held is not None and config.select_on == "heldout":  # beside the dev set(s): selects the epoch
                evals = {**evals, HELDOUT: held}
            elif held is not None:  # the held-out slice replaces the dev set(s): one evaluation split
                evals = {next(iter(task.eval_splits)): held}
        evals = {suffix: subsample(split if isinstance(split, Split) else task.load(split, config.data_dir),
                                   config.max_eval_samples, config.data_seed) for suffix, split in evals.items()}
        return Data(train if config.epochs else Split([], "none (--epochs 0)"), evals, task.label_names)

    def batched_evals(self, data: Data) -> dict[str, Split]:
        return data.evals

    def encode(self, split: Split, tokenizer, config) -> list[dict[str, Any]]:
        if not split.examples:
            return []
        texts = [e.text for e in split.examples]
        pairs = [e.text_pair for e in split.examples] if split.examples[0].text_pair is not None else None
        encoded = tokenizer(texts, pairs, truncation=True, max_length=config.max_seq_length)
        rows = []
        for i, example in enumerate(split.examples):
            row = {key: values[i] for key, values in encoded.items()}
            row["labels"] = float(example.label) if self.regression else int(example.label)
            rows.append(row)
        return rows

    def collate(self, tokenizer, config):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(config))

    def loss(self, model, batch, config):
        return model(**batch).loss

    def evaluate(self, ctx: EvalContext, epoch: int, last: bool) -> Evaluation:
        import torch
        from tqdm.auto import tqdm

        ctx.model.eval()
        metrics, predictions = {}, {}
        for suffix, loader in ctx.loaders.items():
            all_preds, all_labels = [], []
            with torch.no_grad():
                for batch in tqdm(loader, desc=f"evaluate{' ' + suffix if suffix else ''}", unit="batch", leave=False,
                                  disable=not (ctx.progress and ctx.accelerator.is_main_process), dynamic_ncols=True):
                    logits = ctx.model(**batch).logits
                    preds = logits.squeeze(-1).float() if self.regression else logits.argmax(-1)
                    preds, labels = ctx.accelerator.gather_for_metrics((preds, batch["labels"]))
                    all_preds.append(preds.cpu())
                    all_labels.append(labels.cpu())
            # The loader gives rows in length-sorted batches: back to the split's order for the predictions file.
            preds, labels = (in_split_order(torch.cat(values).numpy(), ctx.orders[suffix])
                             for values in (all_preds, all_labels))
            metrics.update(ctx.task.compute_metrics(preds, labels, suffix))
            predictions[suffix] = preds
        return Evaluation(metrics, predictions)

    def write_outputs(self, run, data: Data, outputs) -> None:
        """predictions*.jsonl: index, label and prediction (and their names) of every dev example;
        `harness check` recomputes the metrics on resamples of these."""
        names = data.label_names
        for suffix, split in data.evals.items():
            with open(run.predictions(suffix), "w", encoding="utf-8") as handle:
                for index, (example, pred) in enumerate(zip(split.examples, outputs[suffix].tolist())):
                    row = {"index": index, "label": example.label, "prediction": pred}
                    if names:
                        row["label_name"], row["prediction_name"] = names[example.label], names[pred]
                    handle.write(json.dumps(row) + "\n")

    def describe(self, task, config) -> dict[str, Any]:
        return {}


CLASSIFICATION = ClassificationObjective(regression=False)
REGRESSION = ClassificationObjective(regression=True)
