"""What several sub-commands share: the parser class, the run-option flags built from RunConfig, the
method-option flags, and the choice of runs that the report commands read."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from harness.config import RunConfig
from harness.errors import HarnessError

# Where the method-option flags (--method-opt KEY=VALUE and --<method>-<option>) collect, in command-line order.
METHOD_OPTS = "method_opts"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) instead of a usage dump.

    ``defer(build)`` postpones adding arguments until this parser is used (it parses or prints its
    help): the method-option flags need the method registry, which imports torch, and `harness --help`
    or `harness tasks` should not pay for that.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = []

    def defer(self, build) -> None:
        self._deferred.append(build)

    def _build_deferred(self) -> None:
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._build_deferred()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self._build_deferred()
        return super().format_help()

    def format_usage(self):
        self._build_deferred()
        return super().format_usage()

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _type_of(item: dataclasses.Field):
    annotation = str(item.type)
    if annotation.startswith("bool"):
        return None
    if annotation.startswith("int") or annotation == "int | None":
        return int
    if annotation.startswith("float"):
        return float
    return str


class _MethodOption(argparse.Action):
    """Appends (method or None, key, value, flag) to args.method_opts, so that options given twice,
    by either flag form, resolve in command-line order (the last wins)."""

    def __init__(self, option_strings, dest, method=None, key=None, **kwargs):
        super().__init__(option_strings, METHOD_OPTS, **kwargs)
        self.method, self.key = method, key

    def __call__(self, parser, namespace, values, option_string=None):
        key, value = values if self.key is None else (self.key, values)
        given = list(getattr(namespace, METHOD_OPTS, None) or [])
        setattr(namespace, METHOD_OPTS, [*given, (self.method, key, value, option_string)])


def key_value(text: str):
    """--method-opt's KEY=VALUE, VALUE read as a YAML scalar or list: r=64, use_dora=true, target_modules=[q,v]."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}' (e.g. --method-opt r=64)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text}: VALUE is not valid YAML ({str(err).splitlines()[0]})") from None


def _add_method_flags(parser: argparse.ArgumentParser) -> None:
    from harness.methods import method_specs

    group = parser.add_argument_group("method options (only for the chosen --method)")
    group.add_argument("--method-opt", action=_MethodOption, type=key_value, metavar="KEY=VALUE",
                       default=argparse.SUPPRESS,
                       help="a method option, VALUE read as YAML (r=64, use_dora=true, target_modules=[q,v]); "
                            "repeatable, the last of a key wins. How peft methods take options: "
                            "--method peft:VERA --method-opt r=64")
    for method_name, method in method_specs():
        for key, option in method.options.items():
            group.add_argument(f"--{method_name}-{key.replace('_', '-')}", action=_MethodOption, method=method_name,
                               key=key, default=argparse.SUPPRESS, metavar="VALUE",
                               help=f"{method_name}: {option.help}" + (f" (default: {option.default})" if option.default is not None else ""))


def add_method_options(parser: Parser) -> None:
    """--method-opt KEY=VALUE, and --<method>-<option> for every option of every method (checked
    against --method later); added when the parser is first used."""
    parser.defer(_add_method_flags)


def add_run_options(parser: Parser) -> None:
    """One flag per RunConfig field, plus the method options."""
    defaults = RunConfig.__dataclass_fields__
    for item in dataclasses.fields(RunConfig):
        meta = item.metadata
        if meta.get("cli") is False:
            continue
        default = defaults[item.name].default
        shown = f" (default: {default})" if default not in (None, False) else ""
        kwargs = dict(help=meta["help"] + shown, default=argparse.SUPPRESS)
        if meta.get("positional"):
            parser.add_argument(item.name, nargs="?", **kwargs)
            continue
        flag = "--" + item.name.replace("_", "-")
        value_type = _type_of(item)
        if value_type is None:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
        parser.add_argument(flag, type=value_type, metavar=item.name.split("_")[-1].upper(), **kwargs)
    add_method_options(parser)
    parser.add_argument("--config", dest="config_file", default=argparse.SUPPRESS,
                        help="YAML file of run options (same keys as the flags, with underscores); flags override it")


def _read_config_file(config_file: str) -> dict:
    import yaml

    try:
        values = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise HarnessError(f"cannot read --config {config_file}: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise HarnessError(f"{config_file}: expected a mapping of run options.")
    if "mlflow_run_id" in values:  # a run's own config.json (start_tracking records the id): it reruns
        values = RunConfig.fields_of_run(values)
    return values


def config_from_args(args: argparse.Namespace, command_options=()) -> RunConfig:
    """The RunConfig of the parsed flags; ``command_options`` are the command's own, non-run flags.
    method_options: the config file's, then the method-option flags in command-line order."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "bench", "baseline_command", *command_options)}
    config_file = given.pop("config_file", None)
    values = _read_config_file(config_file) if config_file else {}
    method = given.get("method", values.get("method", RunConfig.method))
    options = dict(values.get("method_options") or {})
    for method_name, key, value, _ in given.pop(METHOD_OPTS, []):
        if method_name is not None and method_name != method:
            raise HarnessError(f"--{method_name}-{key.replace('_', '-')} applies to --method {method_name}, "
                               f"but the method is '{method}'.")
        options[key] = value
    values.update(given)
    values["method_options"] = options
    return RunConfig.from_dict(values, where=config_file or "command line")


def add_source_options(parser) -> None:
    group = parser.add_argument_group("which runs")
    group.add_argument("--runs", default="results/runs", help="folder of run folders (default: results/runs)")
    group.add_argument("--experiment", help="only this experiment file's cells (cells that never ran show as missing)")
    group.add_argument("--variant", help="the experiment file's variant")
    group.add_argument("--mlflow-uri", help="read runs from this MLflow tracking URI instead of run folders")
    group.add_argument("--mlflow-experiment", default="harness", help="MLflow experiment (default: harness)")
    group.add_argument("--filter", default="", help="MLflow filter, e.g. \"params.task = 'glue/sst2'\"")


def records_from_args(args):
    from harness.report.results import records_from_experiment, records_from_mlflow, records_from_runs_dir

    if args.mlflow_uri:
        return records_from_mlflow(args.mlflow_uri, args.mlflow_experiment, args.filter)
    if args.experiment:
        return records_from_experiment(args.experiment, args.runs, args.variant)
    return records_from_runs_dir(args.runs)


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    print(text, end="")
