"""Views of the validated workflow config (the schema in workflow/schemas fills defaults)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCHEDULES = ("cosine", "constant")  # training.schedule
SELECT_ON = ("loss", "ssim", "ssim3d")  # training.select_on


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the schema's (a test keeps them equal)."""

    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    restart_epochs: int = 10
    grad_clip: float = 1.0
    patience: int = 0  # epochs without validation improvement before stopping; 0: never stop
    seed: int = 0
    amp: str | bool = "cuda"  # device.resolve_precision; true: cuda, false: off
    ssim_weight: float = 0.5  # loss = w * (1 - SSIM) + (1 - w) * MSE (papers: 0.5)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's (beta1, beta2)
    schedule: str = "cosine"  # cosine: warm-up + cosine restarts; constant: warm-up, then lr
    select_on: str = "loss"  # the epoch kept: lowest validation loss, or highest mean SSIM
    select_volumes: int | None = None  # validation volumes scored for select_on ssim; None: all

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training.schedule must be one of {', '.join(SCHEDULES)}, "
                             f"not {self.schedule!r}")
        if self.select_on not in SELECT_ON:
            raise ValueError(f"training.select_on must be one of {', '.join(SELECT_ON)}, "
                             f"not {self.select_on!r}")
        if isinstance(self.amp, bool):
            object.__setattr__(self, "amp", "cuda" if self.amp else "off")  # frozen
        if len(self.betas) != 2:
            raise ValueError(f"training.betas must be two numbers [beta1, beta2], not "
                             f"{self.betas!r}")


# the schema's (a test keeps them equal)
FEATURE_DEFAULTS = {"n_bins": 249, "context": 20, "eeg_norm": "log_standard",
                    "pairing": "markers", "bold_scaling": "volume"}


def arch_kind(arch: str) -> str:
    """"pair", "sequence" or "closed_form", as the architecture declares (models.base)."""
    from eeg2fmri.models import describe

    return describe(arch).kind


def resolve_model(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """A model's settings: `same_as: other` copies another entry (e.g. a control of a model)."""
    settings = cfg.get("model_settings", {})
    if name not in settings:
        raise KeyError(f"model {name!r} has no entry under model_settings (known: "
                       f"{', '.join(sorted(settings))})")
    entry = dict(settings[name])
    base = entry.pop("same_as", None)
    if base is not None:
        entry = {**resolve_model(cfg, base), **entry}
    return entry


def train_spec(cfg: dict[str, Any], name: str, seed: int | None = None) -> dict[str, Any]:
    """Everything that determines a model's training: architecture, features, optimisation,
    the subjects its epochs are selected on, and the seed (`seed`, else the config's: the first
    of `seeds`, else `training.seed`)."""
    model = resolve_model(cfg, name)
    training = {**cfg.get("training", {}), **model.pop("training", {})}
    if seed is None and cfg.get("seeds"):
        seed = cfg["seeds"][0]
    if seed is not None:
        training["seed"] = seed
    arch = model.pop("arch")
    features = {**FEATURE_DEFAULTS, **cfg.get("features", {})}
    from eeg2fmri.models import describe

    if describe(arch).input == "raw":  # its own EEG front end reads the raw windows
        features["eeg_norm"] = "raw_standard"
    return {
        "name": name,
        "arch": arch,
        "shuffle_eeg": bool(model.pop("shuffle_eeg", False)),
        "selection": model.pop("selection", "validation"),
        "params": model,
        "features": features,
        "training": training,
    }


TEST_SELECTED = "test-selected: not an estimate"


def display_name(spec: dict[str, Any]) -> str:
    """A model's name in tables and figures; a test-selected model carries the mark."""
    name = spec["name"]
    return f"{name} ({TEST_SELECTED})" if spec.get("selection") == "test" else name


def seeds(cfg: dict[str, Any]) -> list[int] | None:
    """The seeds run as replicates (each its own job and folder), or None: one seed, today's
    paths (`seeds` with a single entry sets that seed)."""
    chosen = cfg.get("seeds") or []
    return list(chosen) if len(chosen) > 1 else None


def train_config(spec: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**spec["training"])


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def config_errors(cfg: dict[str, Any], schema_path: str) -> list[str]:
    """One short line per schema violation, naming the config key (e.g. `training.epochs`)."""
    import jsonschema
    import yaml

    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for err in sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path)):
        path = [str(p) for p in err.absolute_path]
        key = ".".join(path) or "(top level)"
        extra = (sorted(set(err.instance) - set(err.schema.get("properties", {})))
                 if err.validator == "additionalProperties" else [])
        if extra:
            lines.append(f"config key {'.'.join([*path, extra[0]])!r} is not a known setting")
        elif err.validator == "type" and _number_text(err.instance) and (
                "number" in err.validator_value or "integer" in err.validator_value):
            why = ("YAML reads an exponent without a sign as text; write it as "
                   f"{float(err.instance):.6g} or with a signed exponent (1.0e+12)"
                   if "e" in err.instance.lower() else
                   "write it without quotes (`snakemake --config` passes numbers inside lists "
                   "and mappings as text: set such a key in a config file instead)")
            lines.append(f"config key {key!r}: {err.instance!r} is text, not a number: {why}")
        elif err.validator == "type":
            lines.append(f"config key {key!r}: {_type_error(err.instance, err.schema, key)}")
        elif err.validator == "pattern" and err.validator_value == DATASET_NAME:
            lines.append(f"config key {key!r}: dataset name {err.instance!r} may hold only "
                         "lowercase letters and digits, starting with a letter (it names "
                         "folders and a workflow wildcard)")
        else:
            lines.append(f"config key {key!r}: {err.message}")
    lines += [f"config key {key!r}: {text!r} holds a line break; remove it"
              for key, text in _strings(cfg) if "\n" in text or "\r" in text]
    return lines or dataset_errors(cfg) + model_errors(cfg) + synthesis_errors(cfg)


def _strings(obj: Any, key: str = "") -> list[tuple[str, str]]:
    """(dotted key, text) of every string in a config, dictionary keys included."""
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            sub = f"{key}.{k}" if key else str(k)
            out += [(sub, k)] if isinstance(k, str) else []
            out += _strings(v, sub)
        return out
    if isinstance(obj, list):
        return [s for i, v in enumerate(obj) for s in _strings(v, f"{key}.{i}")]
    return [(key, obj)] if isinstance(obj, str) else []


DATASET_NAME = "^[a-z][a-z0-9]*$"
RESERVED_NAMES = ("logs",)  # results_root/logs/ holds the job logs beside results_root/<dataset>/
# results_root/<dataset>/ holds these beside one folder per model
RESERVED_MODEL_NAMES = ("ceiling", "summary", "synthesized", "inspect")


_WORDS = {"array": ("a list", "lists"), "object": ("a mapping", "mappings"),
          "integer": ("an integer", "integers"), "number": ("a number", "numbers"),
          "string": ("text", "strings"), "boolean": ("true or false", "booleans"),
          "null": ("null", "nulls")}


def _kind(value: Any) -> str:
    """A JSON value's type in words ("a list", "text", ...)."""
    if isinstance(value, bool):
        return "a boolean"
    kind = {dict: "object", list: "array", str: "string", int: "integer", float: "number",
            type(None): "null"}.get(type(value), "string")
    return _WORDS[kind][0]


def _type_error(value: Any, schema: dict[str, Any], key: str = "key") -> str:
    """`value` is not of the schema's type, in words: "'null' is text; it must be a list of
    integers or null (...)"."""
    wanted = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
    items = schema.get("items", {}).get("type")
    words = [_WORDS[t][0] + (f" of {_WORDS[items][1]}" if t == "array" and items in _WORDS
                             else "") for t in wanted]
    text = f"{value!r} is {_kind(value)}; it must be {' or '.join(words)}"
    if "null" in wanted and isinstance(value, str) and value.lower() in ("null", "none", "~"):
        text += (" (null: write null unquoted in a config file, or `snakemake --config "
                 f"{key}=` with nothing after '=')")
    return text


def _number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def dataset_errors(cfg: dict[str, Any]) -> list[str]:
    """Dataset names used in config must be built-in or declared; a declared one needs a root."""
    from eeg2fmri.data.datasets import BUILTIN_NAMES

    declared = cfg.get("dataset_settings") or {}
    known = [*BUILTIN_NAMES, *(n for n in declared if n not in BUILTIN_NAMES)]
    lines = []
    for i, name in enumerate(cfg.get("datasets") or []):
        if name in RESERVED_NAMES:
            lines.append(f"config key 'datasets.{i}': {name!r} is the name of results_root's "
                         "log folder; give the dataset another name")
        elif name not in known:
            lines.append(f"config key 'datasets.{i}': dataset {name!r} is neither built-in nor "
                         f"declared under dataset_settings (known: {', '.join(known)})")
    for section in ("subjects", "raw_roots"):
        for name in cfg.get(section) or {}:
            if name not in known or name == "sim":
                lines.append(f"config key '{section}.{name}': not a dataset with files to choose "
                             f"from (known: {', '.join(n for n in known if n != 'sim')})")
    for name, entry in declared.items():
        if name == "sim":
            lines.append("config key 'dataset_settings.sim': the simulated dataset is set "
                         "under 'simulation'")
        elif name not in BUILTIN_NAMES and "root" not in entry:
            lines.append(f"config key 'dataset_settings.{name}.root' is required: the folder "
                         "that holds the dataset")
        elif entry.get("layout") == "patterns" and not (entry.get("eeg") and entry.get("bold")):
            lines.append(f"config key 'dataset_settings.{name}': layout 'patterns' needs both "
                         "'eeg' and 'bold' path patterns")
        if name in BUILTIN_NAMES and name != "sim" and "root" in entry:
            lines.append(f"config key 'dataset_settings.{name}.root': {name!r} is a built-in "
                         "dataset whose recording facts (TR, skip_volumes, n_bins, ...) a "
                         f"dataset of your own would inherit: name yours otherwise, or, for a "
                         f"local copy of {name}, set raw_roots.{name} instead")
        lines += [f"config key 'dataset_settings.{name}.{key}': {why}"
                  for key in ("eeg", "bold") if (why := pattern_error(entry.get(key), entry))]
        lines += [f"config key 'dataset_settings.{name}.{key}': {entry[key]} is not a finite "
                  "number" for key in ("offset_s", "tr", "fs")
                  if isinstance(entry.get(key), float) and not math.isfinite(entry[key])]
    return lines


def pattern_error(pattern: str | None, entry: dict[str, Any]) -> str | None:
    """Why an eeg/bold path pattern cannot be used, or None: it must lie below the root and name
    each subject's own file."""
    from pathlib import PurePosixPath

    if not pattern:
        return None
    if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
        return (f"{pattern!r} must be a path below the dataset's root (no absolute path, no "
                "'..'): move or link the files under root")
    bad = sorted(set(re.findall(r"\{([^{}]*)\}", pattern)) - {"subject", "id", "run"})
    if bad:
        return f"{pattern!r} has unknown placeholder(s) {bad}; known: {{subject}} {{id}} {{run}}"
    if "{subject}" not in pattern and "{id}" not in pattern and len(entry.get("subjects") or
                                                                     [None, None]) != 1:
        return (f"{pattern!r} has no {{subject}} or {{id}}: every subject would read the same "
                "file")
    return None


def synthesis_errors(cfg: dict[str, Any]) -> list[str]:
    """Each name in `models` and each `synthesize` entry's model is an entry of model_settings;
    a synthesize entry's dataset is one of this run."""
    models = cfg.get("model_settings")
    lines = [f"config key 'models.{i}': {name!r} is not an entry of model_settings "
             f"({', '.join(sorted(models))})" for i, name in enumerate(cfg.get("models") or [])
             if models is not None and name not in models]
    for i, entry in enumerate(cfg.get("synthesize") or []):
        if models is not None and entry.get("model") not in models:
            lines.append(f"config key 'synthesize.{i}.model': {entry.get('model')!r} is not an "
                         f"entry of model_settings ({', '.join(sorted(models))})")
        if entry.get("dataset") and entry["dataset"] not in (cfg.get("datasets") or ["sim"]):
            lines.append(f"config key 'synthesize.{i}.dataset': {entry['dataset']!r} is not in "
                         "datasets")
        if isinstance(entry.get("marker"), str) and not entry["marker"].strip():
            lines.append(f"config key 'synthesize.{i}.marker' is empty: give the volume marker "
                         "(e.g. R128), or none to window every TR from start")
    return lines


# every entry may hold these
MODEL_KEYS = ("arch", "same_as", "shuffle_eeg", "selection", "training")


def accepted_settings(arch: str) -> list[str]:
    """The model_settings keys an architecture accepts: its constructor's settings (less what
    the data give), and a sequence model's task settings. Read from the sources: validating a
    config imports neither torch nor a model."""
    from eeg2fmri.models import describe

    info = describe(arch)
    keys = list(info.settings)
    if info.input == "raw":
        keys = [k for k in keys if k != "fs"]  # the data's sampling rate, set by training
    if info.kind == "sequence":
        keys += list(SEQUENCE_SETTINGS)
    return sorted(keys)


# sequences.SequenceTasks' fields (a test keeps them equal): a sequence model's task settings
SEQUENCE_SETTINGS = ("tasks", "known_fraction", "factor", "seq_len", "seq_stride", "mask_seed")


def model_errors(cfg: dict[str, Any]) -> list[str]:
    """One line per model_settings entry whose same_as chain is broken (a loop, a missing
    entry) or that holds a key its architecture does not accept."""
    from eeg2fmri.models import ARCHITECTURES

    settings = cfg.get("model_settings") or {}
    lines = [f"config key 'model_settings.{name}': {name!r} names results/<dataset>/{name}/, "
             "which holds the run's own outputs; give the model another name"
             for name in settings if name in RESERVED_MODEL_NAMES]
    for name in settings:
        chain = [name]
        while "same_as" in settings[chain[-1]]:
            base = settings[chain[-1]]["same_as"]
            if base in chain:
                lines.append(f"config key 'model_settings.{name}.same_as': a loop "
                             f"({' -> '.join([*chain, base])})")
                break
            if base not in settings:
                lines.append(f"config key 'model_settings.{chain[-1]}.same_as': {base!r} is "
                             f"not an entry of model_settings")
                break
            chain.append(base)
        else:
            arch = next((settings[n]["arch"] for n in chain if "arch" in settings[n]), None)
            if arch not in ARCHITECTURES:
                lines.append(f"config key 'model_settings.{chain[-1]}.arch': {arch!r} is not an "
                             f"architecture (known: {', '.join(sorted(ARCHITECTURES))})")
                continue
            accepted = accepted_settings(arch)
            for n in chain:
                for key in settings[n]:
                    if key not in MODEL_KEYS and key not in accepted:
                        lines.append(f"config key 'model_settings.{n}.{key}' is not a setting "
                                     f"of {arch} (it accepts: {', '.join(accepted) or 'none'})")
    return sorted(set(lines))


def option_errors(option: str, value: Any, schema_path: str, at: str = "") -> list[str]:
    """A verb's JSON option checked against the config schema as the config's `at` (a dotted
    key, e.g. `simulation` for simulate --settings; "": a config, of which only what is given is
    checked, less the workflow's `code` digest): one line per problem, naming the option and
    its key."""
    if not at and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "code"}
    cfg = value
    for part in reversed(at.split(".") if at else []):
        cfg = {part: cfg}
    return renamed(config_errors(cfg, schema_path), option, at)


def renamed(lines: list[str], option: str, at: str = "",
            key: Callable[[str], str] = lambda k: k) -> list[str]:
    """config_errors' lines about an option holding the config's `at`: "config key 'at.x.y'"
    becomes "--option key 'x.y'" (`key` maps x.y on), "config key 'at'" "--option"."""
    def name(m: re.Match[str]) -> str:
        inner = m[1].removeprefix(at).removeprefix(".") if at else m[1]
        return option if inner in ("", "(top level)") else f"{option} key {key(inner)!r}"

    return [re.sub(r"config key '([^']*)'", name, line) for line in lines]


# a training spec (train_spec) as `eeg2fmri train --spec` reads it; `selection` may be left out
SPEC_KEYS = ("name", "arch", "shuffle_eeg", "params", "features", "training")


def spec_errors(option: str, spec: Any, schema_path: str) -> list[str]:
    """A training spec (JSON of `train_spec`) checked as its model_settings entry, features and
    training would be: one line per problem, naming the option and the spec's key."""
    if not isinstance(spec, dict):
        return [f"{option}: {_type_error(spec, {'type': 'object'})} (a training spec)"]
    missing = [k for k in SPEC_KEYS if k not in spec]
    unknown = sorted(set(spec) - {*SPEC_KEYS, "selection"})
    if missing or unknown:
        what = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else [])
        return [f"{option}: a training spec holds {', '.join(SPEC_KEYS)} (and selection); "
                f"{'; '.join(what)}"]
    lines = [f"{option} key {k!r}: {_type_error(spec[k], {'type': t})}"
             for k, t in (("name", "string"), ("arch", "string"), ("params", "object"),
                          ("features", "object"), ("training", "object"))
             if not isinstance(spec[k], dict if t == "object" else str)]
    if lines:
        return lines
    lines = [f"{option} key 'params.{k}' is not a model setting (it is a key of the spec or of "
             "model_settings)" for k in spec["params"] if k in MODEL_KEYS]
    lines += [f"{option} key 'features.{k}' is missing (training reads it)"
              for k in ("context", "eeg_norm") if k not in spec["features"]]
    entry = {k: spec[k] for k in ("arch", "shuffle_eeg", "selection") if k in spec}
    features = {k: v for k, v in spec["features"].items()
                if (k, v) != ("eeg_norm", "raw_standard")}  # raw-input models' own norm
    cfg = {"model_settings": {"spec": {**spec["params"], **entry}}, "features": features,
           "training": spec["training"]}
    return lines or renamed(config_errors(cfg, schema_path), option, key=_spec_key)


def _spec_key(key: str) -> str:
    """A key of spec_errors' config as the spec's: model_settings.spec.width -> params.width."""
    if not key.startswith("model_settings.spec"):
        return key
    rest = key.removeprefix("model_settings.spec").removeprefix(".")
    return rest if rest.split(".")[0] in ("arch", "shuffle_eeg", "selection") else (
        f"params.{rest}".rstrip("."))
