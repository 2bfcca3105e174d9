"""What a training run's directory holds, and how it is written and read back.

    config.json              the run's identity (settings hash + a random run id), checksummed
    checkpoint.safetensors   exact-resume state (weights, optimizers, batch generator, random streams, step)
    log.jsonl                one line per log interval and evaluation (cut back on resume)
    result.json              final and best evaluation, learning curve (checksummed)
    diverged.json            instead of result.json: a population member that diverged

A checkpoint is used only by the run that wrote it (identity check); members of a population
write exactly what their solo runs write (``algorithms/population.py`` gives the solo layout).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from d4rl_lite.algorithms.population import load_member_state_dicts, member_state_dict
from d4rl_lite.errors import D4RLLiteError, UserInputError
from d4rl_lite.files import read_record, save_state, write_record
from d4rl_lite.schema import Range
from d4rl_lite.training.logging import truncate_log
from d4rl_lite.training.loop import DivergenceError

CHECKPOINT = "checkpoint.safetensors"
RESULT = "result.json"
DIVERGED = "diverged.json"  # a population member that diverged (the others went on): its error and step
CONFIG = "config.json"
# Settings that do not change what a run computes: a run may be continued with other values.
NOT_IDENTITY = ("steps", "wandb", "wandb_project", "device", "suite", "threads", "compile")


def resume_members(algo: Any, runs: list[Path], states: list[dict[str, Any] | None], ckpt_paths: list[Path],
                   identities: list[str], gens: list[torch.Generator]) -> int:
    """Continue from the members' checkpoint ``states`` (read once by the caller, None where a run
    has none; all or none, at one step); returns the step to continue from."""
    for run, ckpt in zip(runs, ckpt_paths):
        if (run / "checkpoint.pt").exists() and not ckpt.exists():
            raise D4RLLiteError(f"{run} holds a pickle checkpoint (checkpoint.pt) from an older d4rl-lite, which is not "
                                "read (a pickle can run code when loaded); train into a new --run-dir")
    if not any(states):
        for run in runs:
            if (run / "log.jsonl").exists():
                truncate_log(run / "log.jsonl", 0)  # lines of a run killed before its first checkpoint
        return 0
    steps = sorted({checked_step(s.get("step"), ckpt) if s else 0 for s, ckpt in zip(states, ckpt_paths)})
    if len(steps) > 1:  # train_population groups members by step before they get here
        raise D4RLLiteError(f"members at different steps {steps} cannot continue as one population")
    for run in runs:  # the steps this session asks for: check_same_run has just recorded them in config.json
        asked = read_record(run / CONFIG, "run config").get("train", {}).get("steps")
        if isinstance(asked, int):
            check_not_past(asked, steps[0], run)
    load_member_states(algo, states, identities, ckpt_paths, gens)
    for run in runs:
        truncate_log(run / "log.jsonl", steps[0])
    return steps[0]


def load_member_states(algo: Any, states: list[dict[str, Any]], identities: list[str], ckpt_paths: list[Path],
                       gens: list[torch.Generator]) -> None:
    """Put the members' checkpoint ``states`` into ``algo`` (weights, optimizers, its step), their batch
    generators ``gens`` and their random streams; each state must carry its run's ``identities``
    entry. What resuming a run and starting a fine-tuning run from its parents share."""
    for state, identity, ckpt, gen in zip(states, identities, ckpt_paths, gens):
        check_identity(state, identity, ckpt)
        drawn_on = state.get("generator_device", "cpu")
        if drawn_on != algo.device.type:  # a CPU and a CUDA generator are different streams
            raise D4RLLiteError(f"{ckpt}: this run drew its batches on {drawn_on} and cannot continue exactly "
                                f"on {algo.device.type}; continue it with --device {drawn_on}")
        gen.set_state(state["generator"].cpu())  # generator states are CPU byte tensors on every device
    if algo.members:
        load_member_state_dicts(algo, [s["algo"] for s in states])
        for generator, eval_generator, state in zip(algo.noise.generators, algo.eval_noise.generators, states):
            # A checkpoint written before runs were populations of one kept its one stream in
            # torch_rng (cuda_rng on a GPU).
            earlier = state["torch_rng"]
            if algo.device.type == "cuda" and state.get("cuda_rng"):
                earlier = state["cuda_rng"][algo.device.index or 0]
            generator.set_state(state.get("member_rng", earlier).cpu())
            eval_generator.set_state(state.get("eval_rng", earlier).cpu())
    else:
        algo.load_state_dict(states[0]["algo"])
    torch.set_rng_state(states[0]["torch_rng"].cpu())
    if torch.cuda.is_available() and states[0].get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([t.cpu() for t in states[0]["cuda_rng"]])


MAX_STEP = 2**53  # beyond this a float64 no longer counts whole steps; no run gets near it


def check_not_past(steps: int, stopped_at: int, run: Path, unit: str = "updates", option: str = "--steps") -> None:
    """Refuse to continue a run whose checkpoint is already past the ``steps`` asked for: its result
    would claim the checkpoint's step with an evaluation from before it."""
    if stopped_at > steps:
        raise UserInputError(f"{run} has already run {stopped_at:,} {unit} (its checkpoint), more than the {steps:,} "
                             f"asked for; give {option} {stopped_at:,} or more to continue it, or use a new run directory")


def checked_step(step: Any, path: Path) -> int:
    """A checkpoint's step, refused in one line unless a whole number of updates in [0, 2**53)."""
    if type(step) is not int or not 0 <= step < MAX_STEP:
        raise D4RLLiteError(f"{path}: its step ({step!r}) is not a whole number of updates between 0 and {MAX_STEP:,}; "
                            "the checkpoint was forged or damaged. Delete the run directory and train again.")
    return step


def write_result(run: Path, record: dict[str, Any], history: list[dict[str, Any]], step: int) -> dict[str, Any]:
    final = history[-1] if history else {}
    key = "eval/normalized_score" if final and "eval/normalized_score" in final else "eval/return_mean"
    best = max(history, key=lambda h: h[key]) if history else {}
    if final and not math.isfinite(final.get(key, float("nan"))):
        raise DivergenceError(f"training ended with a non-finite score ({key} = {final.get(key)}); no result written. "
                              "Lower the learning rate or check the dataset.")
    result = {**record, "run_dir": str(run), "steps": step, "final": final, "best": best,
              "curve": [{"step": h["step"], key: h[key]} for h in history]}
    if key == "eval/normalized_score":  # which references the scores were normalized with: tables never mix two
        result["references"] = reference_record(record["task"])
    write_record(run / RESULT, result)
    return read_record(run / RESULT, "result")


# What a reader may rely on in a result.json (beyond its checksum, which anyone can recompute).
_SCORES = {"eval/normalized_score?": float, "eval/return_mean?": float}
RESULT_SPEC = {"algorithm": str, "dataset": str, "steps": Range(int, 0), "train": {"seed": Range(int, 0)},
               "final": {"step?": Range(int, 0)}, "curve": [{"step": Range(int, 0), **_SCORES}],
               "references?": (dict, None),
               # A fine-tuning run's: its offline parent's final evaluation, which the report compares with.
               "finetune?": {"offline_final": _SCORES}}


def reference_record(task_name: str) -> dict[str, Any] | None:
    """The reference scores a task's normalized scores are computed with now, and where they come
    from ("package", or the user's re-measured file); None while one is not measured."""
    from d4rl_lite.tasks import get_task

    task = get_task(task_name)
    lo, hi = task.ref_min, task.ref_max
    if lo.value is None or hi.value is None:
        return None
    return {"ref_min": lo.value, "ref_max": hi.value,
            "source": {k: ref.details.get("source", "package") for k, ref in (("ref_min", lo), ("ref_max", hi))}}


def _identity_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The config record without what may change between sessions of one run (NOT_IDENTITY), and
    without the algorithm's settings added later while at their default (``added_later``)."""
    plain = {k: v for k, v in json.loads(json.dumps(record)).items() if k not in ("run_uid", "checksum")}
    plain["train"] = {k: v for k, v in plain["train"].items() if k not in NOT_IDENTITY}
    if isinstance(plain.get("algo"), dict):
        defaults = _added_later_defaults(str(plain.get("algorithm")))
        plain["algo"] = {k: v for k, v in plain["algo"].items() if k not in defaults or v != defaults[k]}
    return plain


def _added_later_defaults(algorithm: str) -> dict[str, Any]:
    """{setting: default} of an algorithm's settings added after runs were recorded without them."""
    import dataclasses

    from d4rl_lite.algorithms import ALGORITHMS

    config = getattr(ALGORITHMS.get(algorithm), "Config", None)
    later = getattr(config, "added_later", ())
    return {f.name: f.default for f in dataclasses.fields(config) if f.name in later} if later else {}


def run_identity(record: dict[str, Any]) -> str:
    """What makes two runs the same run: everything in the config record but the NOT_IDENTITY settings."""
    import hashlib

    return "sha256:" + hashlib.sha256(json.dumps(_identity_fields(record), sort_keys=True).encode()).hexdigest()


def config_differences(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """The first ``limit`` identity settings two config records disagree on, as ``algo.x: 1 -> 2``."""
    def leaves(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix: d}
        return {k: v for key, value in d.items() for k, v in leaves(value, f"{prefix}{key}.").items()}

    a, b = leaves(_identity_fields(old)), leaves(_identity_fields(new))
    diffs = [f"{k.rstrip('.')}: {a.get(k, '(none)')} -> {b.get(k, '(none)')}"
             for k in sorted(set(a) | set(b)) if a.get(k, "(none)") != b.get(k, "(none)")]
    return "; ".join(diffs[:limit]) + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def check_same_run(run: Path, record: dict[str, Any]) -> str:
    """A run directory belongs to one configuration: resuming with another would mix two runs.

    Returns the run's identity for its checkpoints: the settings' hash and the run's own random
    id (two runs of the same settings are still two runs: their checkpoints are not interchangeable).
    """
    import uuid

    path = run / CONFIG
    uid = uuid.uuid4().hex
    if path.exists():
        old = read_record(path, "run config")
        if run_identity(old) != run_identity(record):
            raise UserInputError(f"{run} holds a run with another configuration ({config_differences(old, record)}); "
                             "train it elsewhere (train: --run-dir, bench: --results) or delete that run")
        uid = str(old.get("run_uid", ""))
    write_record(path, {**record, "run_uid": uid})  # the latest steps/device/wandb, same identity
    return checkpoint_identity({**record, "run_uid": uid})


def checkpoint_identity(config: dict[str, Any]) -> str:
    return f"{run_identity(config)}/run:{config.get('run_uid', '')}"


def check_identity(state: dict[str, Any], identity: str, path: Path) -> None:
    if state.get("identity") != identity:
        raise D4RLLiteError(f"{path}: this checkpoint belongs to another run (other algorithm, dataset or settings) "
                            "than its directory's config.json; it is not used. Delete the run directory and train again.")


def save_checkpoint(path: Path, algo: Any, member: int, gen: torch.Generator, step: int, identity: str,
                    extra: dict[str, Any] | None = None) -> None:
    """A run's exact-resume state. A population's member saves its state in the solo layout
    (``algorithms/population.py``) and its random streams as ``member_rng`` (updates) and
    ``eval_rng`` (acting). ``extra``: what else the run needs to continue exactly (a fine-tuning
    run's online transitions and episode), kept under ``extra``."""
    state = {"algo": member_state_dict(algo, member) if algo.members else algo.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "step": step,
             "identity": identity, "generator_device": gen.device.type}
    if algo.members:
        state["member_rng"] = algo.noise.generators[member].get_state()
        state["eval_rng"] = algo.eval_noise.generators[member].get_state()
    if extra is not None:
        state["extra"] = extra
    save_state(path, state)


def read_evals(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    from d4rl_lite.training.logging import read_log

    return [r for r in read_log(path) if "eval/return_mean" in r]
