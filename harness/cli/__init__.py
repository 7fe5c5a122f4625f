"""The `harness` command line: a thin layer over the Python API (harness.train.run and friends).

Each sub-command's module holds its handlers (``cmd_*``) beside the functions that build their
parsers; ``add(sub)`` adds them all. This module only assembles the parser and runs a command.
Lower layers are imported inside the handlers, so `harness --help` imports neither torch nor
transformers.
"""

from __future__ import annotations

import sys

from harness.cli import analyze, bench, grid, report, run, suite, sync
from harness.cli.common import Parser
from harness.errors import HarnessError

__all__ = ["Parser", "build_parser", "main", "quiet_libraries"]


def build_parser() -> Parser:
    parser = Parser(prog="harness", description="Reproduce the LoRA paper and benchmark PEFT methods.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in (run, grid, suite, report, analyze, sync, bench):
        module.add(sub)
    return parser


def quiet_libraries() -> None:
    """Silence library chatter that says nothing to a harness user (deprecations, DB migrations)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
    # peft looks for a config.json beside a GGUF checkpoint (smollm2-135m) to check the vocabulary size.
    warnings.filterwarnings("ignore", message="Could not find a config file in")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # peft imports bitsandbytes in every command, and on an AVX512-BF16 CPU it tries to fetch a fused 4-bit
    # kernel from the hub at import. It would only speed up 4-bit inference (bitsandbytes' built-in kernel
    # does the same work, slower; training dequantizes and multiplies in fp32), so its failed fetch
    # (offline, or an untrusted repository) is noise in every command that never quantizes.
    for name in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):  # the failure; the offline notice
        logging.getLogger(name).addFilter(_not_the_hub_kernel_notice)  # added once per process


def _not_the_hub_kernel_notice(record) -> bool:
    message = record.getMessage()
    return "gemm_4bit_forward from kernels-community" not in message and "quantization-bitsandbytes" not in message


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    del args.func
    try:
        return func(args)
    except HarnessError as err:
        print(f"harness: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness ... | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
