"""``bench SUITE --plan``: what a suite will cost on this machine, before running it.

The projection is measured, not guessed: for every job of the suite (an algorithm on a dataset,
its seeds as one population or one run each) a short calibration times updates of that
algorithm with the suite's settings, on random data of the task's shape, as a worker runs them
(one torch thread, the suite's precision, warm-up phases over; an algorithm whose updates differ
over a run, as MOPO's model fitting, rollouts and SAC steps, has each of its phases timed and
weighted by its share of the run: ``cost_phases``); and times steps of the task's
env copies acting through that policy, as an evaluation steps them. Evaluations are counted as
if every episode ran to the task's horizon (an upper bound where episodes can end early). The
jobs are then laid on the workers in the order the local pool takes them, each worker starting
after a measured process start (a new Python importing torch and d4rl_lite). A suite's online
fine-tuning counts one update and one env step of every member per env step (the env step timed as
an evaluation step, which steps more copies: an upper bound), plus its evaluations. Not counted:
building datasets that are missing.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from d4rl_lite.errors import UserInputError
from d4rl_lite.records import count_label

JOB_OVERHEAD_S = 1.0  # a job's dataset load and env creation in a running worker (0.5-2 s here)
CALIBRATION_UPDATES = 12
CALIBRATION_ENV_STEPS = 20


@dataclass
class JobCost:
    algorithm: str
    dataset: str
    seeds: list[int]
    update_s: float  # one offline update of the whole population (or the one run), the mean over its run
    eval_step_s: float  # one step of every evaluation copy, policy call included
    updates: int
    env_steps: int  # of evaluation, all members
    seconds: float


def _calibrate_updates(algo_name: str, settings: dict[str, Any], obs_dim: int, act_dim: int, members: int,
                       spans: list[tuple[int, int]], precision: str, device: str) -> Any:
    """([seconds of each span's updates (start, end)], the algorithm) for a population of ``members`` on
    random data, each of the algorithm's cost phases timed where it runs (``cost_phases``)."""
    import contextlib

    import torch

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.base import training_settings
    from d4rl_lite.algorithms.settings import make_config

    cls = get_algorithm(algo_name)
    config = make_config(cls.Config, settings)
    if cls.supports_population:
        algo = cls.population(obs_dim, act_dim, config, list(range(members)), device=device)
        lead: tuple[int, ...] = (members,)
    else:  # an algorithm that trains its seeds one at a time: plain (B, d) batches
        algo, lead = cls(obs_dim, act_dim, config, device=device), ()
    batch_size = training_settings(config).batch_size
    gen = torch.Generator(device=algo.device).manual_seed(0)

    def batch() -> dict[str, torch.Tensor]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*lead, batch_size, *shape, generator=gen, device=algo.device)

        return {"observations": rand(obs_dim), "actions": rand(act_dim) * 2 - 1, "rewards": rand(),
                "next_observations": rand(obs_dim), "terminals": torch.zeros(*lead, batch_size, device=algo.device)}

    cast = (torch.autocast(device_type=algo.device.type, dtype=torch.bfloat16) if precision == "bf16"
            else contextlib.nullcontext())

    def seconds_per_update(at: int, window: int) -> float:
        """Updates timed from step ``at``, no more than ``window`` (the phase's) with two first ones warming
        the allocator and kernels where it allows."""
        warm = 2 if window > 4 else 0
        timed = max(1, min(CALIBRATION_UPDATES, window - warm))
        algo.step = at
        for i, b in enumerate([batch() for _ in range(warm + timed)]):
            if i == warm:
                if algo.device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            with cast:
                algo.update(b)
            algo.step += 1  # as the loop counts them (TD3+BC's actor moves every policy_freq-th)
        if algo.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / timed

    return [sum(count * seconds_per_update(at, window) for at, count, window in cls.cost_phases(config, start, end))
            for start, end in spans], algo


def _calibrate_eval_step(task: Any, algo: Any, copies_per_member: int) -> float:
    """Seconds per evaluation step: every member's copies stepped once, one policy call."""
    from d4rl_lite.envs.vector import EnvBatch

    members = max(1, algo.members)
    envs = EnvBatch(task, members * copies_per_member, workers=1)  # a suite worker steps its copies in-process
    try:
        options = task.eval_reset_options()
        for slot in range(members * copies_per_member):
            envs.reset(slot, slot, options)
        start = time.perf_counter()
        for _ in range(CALIBRATION_ENV_STEPS):
            obs = task.flatten_observation(envs.obs)
            shaped = obs.reshape(members, copies_per_member, -1) if algo.members else obs
            actions = np.asarray(algo.act(shaped)).reshape(members * copies_per_member, -1)
            _, _, terminated, truncated = envs.step(actions)
            for slot in np.flatnonzero(terminated | truncated):
                envs.reset(int(slot), int(slot), options)
        return (time.perf_counter() - start) / CALIBRATION_ENV_STEPS
    finally:
        envs.close()


def plan_suite(suite: Any, workers: int = 2, population: bool = True, device: str = "cpu",
               todo: list[tuple[str, str, int]] | None = None,
               cache: dict[tuple[Any, ...], tuple[list[float], float]] | None = None) -> tuple[list[JobCost], float]:
    """The measured cost of every job of ``suite`` (its unfinished runs ``todo``, default all) and
    the projected wall time on ``workers`` workers. ``cache``: calibrations to reuse and extend."""
    import torch

    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import domain_settings, make_config
    from d4rl_lite.algorithms import memory
    from d4rl_lite.benchmark.runner import population_groups
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.evaluation.evaluate import EVAL_COPIES
    from d4rl_lite.tasks import get_task

    from d4rl_lite.benchmark.finetune_suite import plan_of

    finetune = plan_of(suite)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a suite worker runs
    costs = []
    cache = {} if cache is None else cache
    try:
        for algo, dataset, seeds in population_groups(suite, suite.runs() if todo is None else todo, population):
            task = get_task(parse_dataset_name(dataset).task)
            episodes = suite.eval_episodes or task.eval_episodes
            copies = max(1, min(EVAL_COPIES, episodes))  # as evaluate_population runs them
            steps, eval_every = suite.steps_on(dataset), suite.eval_every_on(dataset)
            settings = {**domain_settings(algo, task.domain, task.name), **suite.algo_settings(algo, dataset)}  # as training applies them
            online = finetune.env_steps if finetune is not None and finetune.applies(algo) else 0
            key = (algo, task.observation_dim, task.action_dim, len(seeds), task.name, steps, online,
                   repr(sorted(settings.items())))
            too_big = memory.too_big(algo, dataset, make_config(get_algorithm(algo).Config, settings), task.observation_dim,
                                     len(seeds) if get_algorithm(algo).supports_population else 1, task.action_dim)
            if too_big:  # before the calibration allocates it
                raise UserInputError(too_big)
            if key not in cache:
                spans = [(0, steps), (steps, steps + online)]  # offline, then online (fine-tuning) updates
                span_s, trained = _calibrate_updates(algo, settings, task.observation_dim, task.action_dim, len(seeds),
                                                     spans, suite.precision, device)
                cache[key] = (span_s, _calibrate_eval_step(task, trained, copies))
            (offline_s, online_s), eval_step_s = cache[key]
            evaluations = steps // eval_every + (steps % eval_every > 0)
            eval_steps = evaluations * -(-episodes // copies) * task.horizon  # batch steps, episodes to the horizon
            seconds = offline_s + eval_steps * eval_step_s + JOB_OVERHEAD_S
            updates, env_steps = steps * len(seeds), evaluations * episodes * task.horizon * len(seeds)
            if online:  # its online phase, after the offline budget
                online_evals = online // (finetune.eval_every or eval_every) + 1
                # One env step of every member per update, counted as an evaluation step (which steps
                # more copies per member: an upper bound).
                seconds += online_s + online * eval_step_s + online_evals * -(-episodes // copies) * task.horizon * eval_step_s
                updates += online * len(seeds)
                env_steps += (online + online_evals * episodes * task.horizon) * len(seeds)
            costs.append(JobCost(algo, dataset, seeds, offline_s / max(steps, 1), eval_step_s, updates, env_steps, seconds))
    finally:
        torch.set_num_threads(threads)
    return costs, makespan([c.seconds for c in costs], workers, worker_start_seconds())


@functools.cache
def worker_start_seconds() -> float:
    """How long a new worker process takes to be ready: a Python importing what a suite job needs
    (measured once per process)."""
    import subprocess
    import sys

    start = time.perf_counter()
    # (Making the first optimizer imports torch._dynamo: about 2.5 s here, once per process.)
    subprocess.run([sys.executable, "-c", "import torch, d4rl_lite.benchmark.runner, d4rl_lite.training.offline; "
                    "torch.optim.Adam([torch.zeros(1, requires_grad=True)])"], check=True, capture_output=True)
    return time.perf_counter() - start


def makespan(seconds: list[float], workers: int, start: float = 0.0) -> float:
    """Wall time of jobs taken in order by the first free of ``workers`` (the local pool's order),
    every worker ready after ``start`` seconds."""
    free = [start] * max(1, workers)
    for s in seconds:
        i = int(np.argmin(free))
        free[i] += s
    return max(free) if seconds else 0.0


def duration(seconds: float) -> str:
    """'1 h 47 min', '3 min 10 s', '42 s'."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m} min" if h else f"{m} min {s} s" if m else f"{s} s"


def print_plan(suite: Any, workers: int, population: bool, device: str, todo: list[tuple[str, str, int]] | None = None,
               log: Any = print) -> float:
    """Print the plan; returns the projected wall time in seconds. It runs none of the suite's
    imports: the algorithms only they register are named as not measured."""
    import torch

    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.benchmark.runner import check_workers

    check_workers(workers)
    todo = suite.runs() if todo is None else todo
    unknown = sorted({algo for algo, _, _ in todo} - set(ALGORITHMS))
    if unknown:
        log(f"not measured: {', '.join(unknown)}, which the suite's imports register; --plan never runs a suite's "
            "imports (bench runs them with --allow-imports)")
        todo = [run for run in todo if run[0] not in unknown]
    log(f"plan of suite {suite.name} on this machine ({os.cpu_count()} CPU cores, {device}, {count_label(workers, 'worker')}, "
        f"{suite.precision}; calibrating each job for a few seconds ...)")
    cache: dict[tuple[Any, ...], tuple[list[float], float]] = {}
    costs, wall = plan_suite(suite, workers, population, device, todo, cache)
    for c in costs:
        who = f"{c.algorithm} on {c.dataset}, " + (f"seeds {','.join(map(str, c.seeds))} as one population"
                                                    if len(c.seeds) > 1 else f"seed {c.seeds[0]}")
        log(f"  {who}: {c.update_s * 1e3:.1f} ms/update (mean over the run), {c.eval_step_s * 1e3:.1f} ms/evaluation step "
            f"-> {duration(c.seconds)}")
    runs = sum(len(c.seeds) for c in costs)
    log(f"{runs} runs in {len(costs)} jobs: {sum(c.updates for c in costs):,} updates, up to "
        f"{sum(c.env_steps for c in costs):,} environment steps of evaluation"
        + (" and online fine-tuning" if getattr(suite, "finetune", None) else ""))
    log(f"projected wall time: {duration(wall)} with {count_label(workers, 'worker')} "
        f"({duration(sum(c.seconds for c in costs))} of work; missing datasets are built first, not counted)")
    if population and len(costs) < runs:
        solo, solo_wall = plan_suite(suite, workers, False, device, todo, cache)
        log(f"as solo runs (--population off): {duration(solo_wall)} ({duration(sum(c.seconds for c in solo))} of work)")
    if not torch.cuda.is_available():
        log("GPU: unknown (no GPU on this machine to measure; `bench --plan --device cuda` on one measures it)")
    return wall
