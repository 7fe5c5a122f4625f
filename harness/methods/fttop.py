"""FT-Top2 (Li & Liang 2021): fine-tune only the last k transformer blocks (k=2 in the paper)."""

from harness.errors import HarnessError
from harness.methods.arch import blocks
from harness.methods.base import MethodSpec, Option, train_only


def apply_fttop(model, options, head_modules):
    layers = blocks(model)
    k = options["k"]
    if k > len(layers):
        raise HarnessError(f"--fttop2-k {k} is more than the model's {len(layers)} blocks.")
    top = {id(p) for block in layers[-k:] for p in block.parameters()}
    names = {n for n, p in model.named_parameters() if id(p) in top}
    return train_only(model, names.__contains__, head_modules)


FTTOP2 = MethodSpec("fttop2", "FT-Top2: only the last k blocks (default k=2)", apply_fttop,
                    options={"k": Option(int, 2, "number of top blocks to fine-tune", positive=True)},
                    defaults={"learning_rate": 1e-4}, trains_backbone=True, token_wise=True)
