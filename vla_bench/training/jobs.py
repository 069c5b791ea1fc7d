"""Building a training job: the model to train (from a recipe or a checkpoint), the data split, the
state statistics, the trainable parts, and the objective; `train_teacher` and `distill` run them."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from vla_bench.errors import VlaBenchError
from vla_bench.models.base import VlaModel
from vla_bench.training import data as D
from vla_bench.training import objectives as O
from vla_bench.training.adapters import state_statistics
from vla_bench.training.config import DistillConfig, TrainConfig
from vla_bench.training.trainer import EXPORT_DIR, Job, run

LOG = logging.getLogger("vla_bench")
RECIPES = Path(__file__).resolve().parent / "recipes"
TRAINING_FILE = "training.json"  # written beside a exported checkpoint: how it was trained


def recipe_path(init: str) -> Path | None:
    """A recipe file named by `init` (a path, or a file name in vla_bench/training/recipes/); None for a checkpoint dir."""
    path = Path(init)
    if path.is_dir():
        return None
    if path.suffix == ".json":
        if path.is_file():
            return path
        if (RECIPES / path.name).is_file():
            return RECIPES / path.name
        raise VlaBenchError(f"--init {init}: no such recipe (packaged recipes: {', '.join(sorted(p.name for p in RECIPES.glob('*.json')))})")
    raise VlaBenchError(f"--init {init}: neither a checkpoint directory nor a recipe .json")


def load_model(init: str, output: Path, architecture: str) -> tuple[VlaModel, bool]:
    """The model to train and whether it came from a trained checkpoint directory (not a recipe)."""
    from vla_bench.models.checkpoint import from_pretrained, read_config
    from vla_bench.models.tiny import build_from_recipe

    recipe = recipe_path(init)
    if recipe is not None:
        built = output / "init"
        if not (built / "config.json").is_file():
            build_from_recipe(recipe, built)
        path, trained = built, False
    else:
        path, trained = Path(init), True
    config = read_config(path)
    if config.architecture != architecture:
        raise VlaBenchError(f"--init {init} holds a {config.architecture!r} model; this command trains {architecture!r}")
    return from_pretrained(path, device="cpu").train(), trained


def _data(config: TrainConfig | DistillConfig, model: VlaModel) -> tuple[list[Path], list[D.Demo], list[D.Demo]]:
    paths = [Path(p) for p in config.data]
    for warning in D.check_conventions(paths, model.config.protocol.flip_images, model.config.protocol.state):
        LOG.warning("warning: %s", warning)
    from vla_bench.episodes import parse_int_list

    inits = parse_int_list(config.init_states, "--init-states") if config.init_states is not None else None
    demos = D.load_datasets(paths, model.views, config.noop_filter, inits)
    train, val = D.split_demos(demos, config.val_fraction, config.seed)
    return paths, train, val


def _scale(config: TrainConfig | DistillConfig, demos: list[D.Demo]) -> np.ndarray:
    return D.arm_scale(demos) if config.arm_loss_scaling else np.ones(6, dtype=np.float32)


def _norm(config: TrainConfig | DistillConfig, model: VlaModel, demos: list[D.Demo], trained: bool) -> tuple[np.ndarray, np.ndarray] | None:
    if not config.normalise_state:
        return None
    norm = state_statistics(model, demos)
    if trained:  # the loaded weights read raw states: make them read standardised ones, same outputs
        O.unfold_state_normalisation(model, *norm)
    return norm


def _versions() -> dict[str, Any]:
    from importlib.metadata import version

    from vla_bench.results import provenance

    found = provenance.versions()
    found["accelerate"] = version("accelerate")
    return {"versions": found, "code": provenance.git_commit(), "host": provenance.host()}


def _as_json(config: TrainConfig | DistillConfig) -> dict[str, Any]:
    """The config as run.json stores it (tuples as lists), so a resume compares like with like."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _numel(model: VlaModel, names: list[str]) -> int:
    chosen = set(names)
    return sum(p.numel() for n, p in model.named_parameters() if n in chosen)


def _write_training_file(checkpoint: Path, entry: dict[str, Any]) -> None:
    (checkpoint / TRAINING_FILE).write_text(json.dumps(entry, indent=2) + "\n")


def train_teacher(config: TrainConfig) -> Path:
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    model, trained = load_model(config.init, output, "seer")
    paths, train, val = _data(config, model)
    norm = _norm(config, model, train, trained)
    trainable = O.set_trainable(model, ("",), config.frozen)
    objective = O.TeacherObjective(model, _scale(config, train), norm)
    entry = {"kind": "teacher", "init": config.init, "trainable_parameters": _numel(model, trainable)}
    job = Job("teacher", config, model, objective, train, val, norm, {"training": entry})
    checkpoint = run(job, _as_json(config), paths, output, _versions)
    _write_training_file(checkpoint, {**entry, "steps": config.steps, "data": list(config.data)})
    return checkpoint


def check_widths(teacher: VlaModel, student: VlaModel) -> None:
    """The teacher's action-feature width must equal the student's mapper output."""
    teacher_width = int(teacher.action_decoder[0].in_features)
    mapper_out = int(student.action_mapper[-1].out_features)
    if teacher_width != mapper_out:
        raise VlaBenchError(
            f"teacher action-feature width {teacher_width} (its hidden_size) differs from the student's action mapper "
            f"output {mapper_out} (model.teacher_width in the student config); they must be equal"
        )


def copy_decoder(teacher: VlaModel, student: VlaModel) -> None:
    """The student reuses the teacher's action decoder (DESIGN §6)."""
    for name in O.DECODER:
        getattr(student, name).load_state_dict(getattr(teacher, name).state_dict())


def distill(config: DistillConfig) -> Path:
    from vla_bench.models.checkpoint import from_pretrained, read_config

    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    student, trained = load_model(config.init, output, "vita-vla")
    teacher = None
    if config.teacher is not None:
        if read_config(Path(config.teacher)).architecture != "seer":
            raise VlaBenchError(f"--teacher {config.teacher} is not a Seer teacher checkpoint")
        teacher = from_pretrained(Path(config.teacher), device="cpu")
        check_widths(teacher, student)
    init_training = {}
    if trained and (Path(config.init) / TRAINING_FILE).is_file():
        init_training = json.loads((Path(config.init) / TRAINING_FILE).read_text())
    if config.stage == "align":
        copy_decoder(teacher, student)
    elif init_training.get("kind") != "align":
        LOG.warning("warning: stage 2 without a stage-1 (align) checkpoint: this is the no-alignment ablation")
        if teacher is not None:
            copy_decoder(teacher, student)
        else:
            LOG.warning("warning: no --teacher either: the student's action decoder starts from its own (random) weights")
    paths, train, val = _data(config, student)
    norm = _norm(config, student, train, trained)
    prefixes = config.trainable if config.trainable is not None else O.default_trainable(config.stage, student)
    trainable = O.set_trainable(student, prefixes, config.frozen)
    if config.stage == "align":
        objective = O.AlignObjective(student, teacher, norm)
    else:
        objective = O.FinetuneObjective(student, _scale(config, train), norm)
    entry = {"kind": config.stage, "init": config.init, "init_kind": init_training.get("kind"), "teacher": config.teacher,
             "trainable_prefixes": list(prefixes), "trainable_parameters": _numel(student, trainable)}
    job = Job(config.stage, config, student, objective, train, val, norm, {"training": entry})
    checkpoint = run(job, _as_json(config), paths, output, _versions)
    _write_training_file(checkpoint, {**entry, "steps": config.steps, "data": list(config.data)})
    return checkpoint


__all__ = ["train_teacher", "distill", "EXPORT_DIR"]
