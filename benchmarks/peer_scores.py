"""Scores side by side with a peer library (d3rlpy) on our data: CQL and IQL on hopper-medium-replay-v0.

Both libraries train on the same Minari dataset (d3rlpy reads it with ``minari.load_dataset``) with
the settings the ``lite`` suite gives ours (2x128 networks, states standardized, CQL's conservative
weight 10 with a fixed multiplier, IQL's expectile, temperature and rewards scaled so returns span
1000), in fp32 on one thread. Ours runs without CQL's behaviour-cloning warm-up (d3rlpy has none).
Both are scored by our evaluation (d4rl_lite.evaluation: the task's episode seeds, deterministic
actions, the normalized score with our reference scores) at the same update counts: d3rlpy's policy
is exported at each of them with its ``save_policy`` (TorchScript, the graph of its ``predict``,
checked against ``predict``) and evaluated here. What the two libraries do differently is printed
with the scores and written to the JSON.

d3rlpy is never a dependency of ours: it runs in its own virtual environment, in a subprocess.

    python -m venv /opt/d3rlpy-venv && /opt/d3rlpy-venv/bin/pip install torch==2.13.0 d3rlpy minari h5py pillow
    python benchmarks/peer_scores.py --updates 20000 --seeds 3 --out peer_scores.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from peer_scores_d3rlpy import PEER_SCRIPT, TARGET_NOTE, UNMATCHED  # beside this script

DATASET = "hopper-medium-replay-v0"
ALGOS = ("cql", "iql")


def our_settings(algo: str, target_action: str = "sampled") -> dict:
    """The lite suite's settings for ``algo`` on the dataset, without CQL's warm-up (d3rlpy has none)."""
    from d4rl_lite.benchmark.suites import Suite

    settings = dict(Suite.load("lite").algo_settings(algo, DATASET))
    if algo == "cql":
        settings.update(warmup_steps=0, target_action=target_action)
    return settings


def peer_spec(algo: str, cfg, dataset) -> dict:
    """d3rlpy's configuration of ``algo`` matching our config ``cfg`` on ``dataset`` (for the subprocess)."""
    if cfg.reward_scale != 1.0 or cfg.reward_bias != 0.0:
        raise ValueError("reward_scale / reward_bias have no d3rlpy counterpart here")
    shared = {"batch_size": cfg.batch_size, "gamma": cfg.gamma, "tau": cfg.tau, "n_critics": 2}
    if algo == "cql":
        if cfg.lagrange or cfg.cql_temperature != 1.0 or cfg.target_entropy is not None:
            raise ValueError("d3rlpy's CQL has a fixed temperature 1 and target entropy -|A|; compare without lagrange")
        settings = {**shared, "actor_learning_rate": cfg.actor_lr, "critic_learning_rate": cfg.critic_lr,
                    "temp_learning_rate": cfg.temperature_lr, "initial_temperature": 1.0,
                    "alpha_learning_rate": 0.0, "initial_alpha": 1.0,  # a fixed multiplier of the conservative weight
                    "conservative_weight": cfg.cql_weight, "n_action_samples": cfg.num_sampled_actions,
                    "soft_q_backup": cfg.backup_entropy}
        cosine = None
    else:
        settings = {**shared, "actor_learning_rate": cfg.actor_lr, "critic_learning_rate": cfg.critic_lr,
                    "expectile": cfg.expectile, "weight_temp": cfg.beta, "max_weight": cfg.max_weight}
        cosine = cfg.actor_lr_schedule_steps if cfg.actor_lr_decay else None
    stats = dataset.observation_stats() if cfg.normalize_states else None
    return {"config_class": {"cql": "CQLConfig", "iql": "IQLConfig"}[algo], "settings": settings,
            "actor_hidden": list(cfg.actor_hidden), "critic_hidden": list(cfg.critic_hidden),
            "obs_mean": None if stats is None else stats.mean.tolist(),
            "obs_std": None if stats is None else stats.std.tolist(),
            "reward_multiplier": dataset.return_range_scale(1000.0) if cfg.normalize_reward else None,
            "actor_cosine_steps": cosine}


def run_peer(python: str, spec: dict, minari_root: str) -> tuple[list[tuple[int, str]], dict]:
    """Train d3rlpy in its venv; returns ([(step, exported policy file)], its summary)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PEER_SCRIPT)
    env = {**os.environ, "MINARI_DATASETS_PATH": minari_root, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # d3rlpy's side sees only its venv
    try:
        out = subprocess.run([python, f.name, json.dumps(spec)], capture_output=True, text=True, env=env, check=False)
    finally:
        os.unlink(f.name)
    if out.returncode:
        raise RuntimeError(f"d3rlpy side failed:\n{out.stderr[-3000:]}")
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return [(r["step"], r["policy"]) for r in lines if "policy" in r], lines[-1]


def score_exported(task, path: str, episodes: int) -> float:
    """Our evaluation of a TorchScript policy exported by d3rlpy (raw observations in, actions out)."""
    import numpy as np
    import torch

    from d4rl_lite.evaluation.evaluate import evaluate

    module = torch.jit.load(path)

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(obs, dtype=torch.float32)).numpy()

    return float(task.normalized_score(evaluate(task, policy, episodes=episodes).returns.mean()))


def run_ours(algo: str, dataset, settings: dict, seed: int, args, run_dir: str) -> dict[int, float]:
    """Our training of ``algo`` (fp32, one thread, evaluated by its own hooks); {step: normalized score}."""
    from d4rl_lite.training.offline import TrainConfig, train

    tc = TrainConfig(steps=args.updates, seed=seed, device="cpu", log_every=args.eval_every, eval_every=args.eval_every,
                     eval_episodes=args.episodes, checkpoint_every=args.eval_every, precision="fp32", threads=1)
    record = train(algo, dataset, tc, settings, run_dir=run_dir)
    return {int(point["step"]): float(point["eval/normalized_score"]) for point in record["curve"]}


def peer_seed(args, spec: dict, seed: int, task, work: str, minari_id: str,
              minari_root: str) -> tuple[dict[int, float], dict, tuple[float, float]]:
    """One seed of d3rlpy: trained in its venv, its exported policies scored by our evaluation;
    ({step: normalized score}, its summary, (training seconds, evaluation seconds))."""
    out_dir = os.path.join(work, f"{spec['config_class']}_d3rlpy_{seed}")
    os.makedirs(out_dir)
    exported, summary = run_peer(args.peer_python, {**spec, "seed": seed, "updates": args.updates,
                                                    "eval_every": args.eval_every, "out_dir": out_dir,
                                                    "minari_id": minari_id}, minari_root)
    t0 = time.perf_counter()
    scores = {step: score_exported(task, path, args.episodes) for step, path in exported}
    return scores, summary, (summary["train_seconds"], time.perf_counter() - t0)


def earlier_peer_scores(args, algo: str, spec: dict, settings: dict, steps: list[int], seeds: list[int],
                        checksum: str) -> dict:
    """d3rlpy's per-seed scores of ``algo`` from ``args.peer_from``, refused unless they were made the way this
    run would make them (the same dataset, evaluation and seeds, d3rlpy's settings, and ours but for CQL's
    target action, which include the state and reward scaling both sides share):
    {"scores": {seed: {step: score}}, "summary": {"version", "transitions"}, "seconds": {...}}."""
    with open(args.peer_from) as f:
        earlier = json.load(f)
    entry = earlier.get("algorithms", {}).get(algo)
    if entry is None:
        raise SystemExit(f"{args.peer_from} has no {algo} runs: run this script for {algo} without --peer-from first")

    def shared(ours: dict) -> dict:  # our settings that d3rlpy's side was matched to, as JSON holds them
        return json.loads(json.dumps({k: v for k, v in ours.items() if k != "target_action"}))

    same = {"dataset": (earlier.get("dataset"), DATASET), "updates": (earlier.get("updates"), args.updates),
            "eval_every": (earlier.get("eval_every"), args.eval_every),
            "episodes": (earlier.get("episodes"), args.episodes), "steps": (entry.get("steps"), steps),
            "our shared settings": (shared(entry["ours"].get("settings", {})), shared(settings)),
            "d3rlpy config": (entry["d3rlpy"].get("config_class"), spec["config_class"]),
            "d3rlpy settings": (entry["d3rlpy"].get("settings"), spec["settings"]),
            "networks": (entry["d3rlpy"].get("hidden"), {"actor": spec["actor_hidden"], "critic": spec["critic_hidden"]}),
            "actor schedule": (entry["d3rlpy"].get("actor_cosine_steps"), spec["actor_cosine_steps"])}
    if "dataset_checksum" in earlier:  # recorded since --peer-from exists
        same["dataset checksum"] = (earlier["dataset_checksum"], checksum)
    differ = [name for name, (was, now) in same.items() if was != now]
    missing = [s for s in seeds if str(s) not in entry["d3rlpy"]["scores"]]
    if differ or missing:
        raise SystemExit(f"{args.peer_from}'s d3rlpy runs of {algo} are not this run's ("
                         + ", ".join([f"{d} differ" for d in differ] + [f"no seed {s}" for s in missing])
                         + "): run without --peer-from")
    scores = {s: dict(zip(steps, entry["d3rlpy"]["scores"][str(s)])) for s in seeds}
    seconds = {k: v for k, v in entry.get("seconds", {}).items() if k.startswith("d3rlpy")}
    return {"scores": scores, "summary": {"version": earlier.get("d3rlpy_version"), "transitions": "the same"},
            "seconds": seconds}


def prepare(args, dataset) -> dict[str, tuple[dict, dict]]:
    """Each algorithm's (our settings, d3rlpy's spec matching them)."""
    from d4rl_lite.algorithms import get_algorithm
    from d4rl_lite.algorithms.settings import make_config

    prepared = {}
    for algo in args.algos:
        settings = our_settings(algo, args.target_action)
        prepared[algo] = settings, peer_spec(algo, make_config(get_algorithm(algo).Config, settings), dataset)
    return prepared


def reuse_earlier(args, prepared: dict[str, tuple[dict, dict]], steps: list[int], seeds: list[int],
                  checksum: str) -> dict[str, dict]:
    """Every algorithm's d3rlpy runs from ``args.peer_from`` (``earlier_peer_scores``), or a refusal;
    ``prepared``: each algorithm's (our settings, d3rlpy's spec)."""
    return {algo: earlier_peer_scores(args, algo, spec, settings, steps, seeds, checksum)
            for algo, (settings, spec) in prepared.items()}


def algo_entry(steps: list[int], settings: dict, spec: dict, ours: dict, peer: dict, notes: list[str],
               times: dict) -> dict:
    """The JSON entry of one algorithm: both sides' settings, per-seed scores and mean curves."""
    seeds = sorted(ours)
    return {
        "steps": steps, "ours": {"settings": settings, "scores": {str(s): [ours[s].get(t) for t in steps] for s in seeds}},
        "d3rlpy": {"config_class": spec["config_class"], "settings": spec["settings"],
                   "hidden": {"actor": spec["actor_hidden"], "critic": spec["critic_hidden"]},
                   "actor_cosine_steps": spec["actor_cosine_steps"],
                   "scores": {str(s): [peer[s].get(t) for t in steps] for s in seeds}},
        "mean": {side: [statistics.fmean(v[s][t] for s in seeds) for t in steps]
                 for side, v in (("ours", ours), ("d3rlpy", peer))},
        "not_matched": notes, "seconds": {k: round(v, 1) for k, v in times.items()}}


def curve_rows(steps: list[int], ours: dict[int, dict[int, float]], peer: dict[int, dict[int, float]]) -> list[str]:
    """The table of both curves: per evaluation step, each side's mean over seeds and its seeds' scores."""
    def cells(side: dict[int, dict[int, float]], step: int) -> tuple[str, str]:
        values = [side[seed][step] for seed in sorted(side) if step in side[seed]]
        mean = f"{statistics.fmean(values):.1f}" if values else "-"
        return mean, " ".join(f"{v:5.1f}" for v in values)

    width = 6 * max(len(ours), len(peer), 1)
    rows = [f"{'updates':>8} {'ours':>6} {'d3rlpy':>7}   {'ours per seed':<{width}}  d3rlpy per seed"]
    for step in steps:
        (om, os_), (pm, ps) = cells(ours, step), cells(peer, step)
        rows.append(f"{step:>8} {om:>6} {pm:>7}   {os_:<{width}}  {ps}")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer-python", default=os.environ.get("D3RLPY_PYTHON", "/opt/d3rlpy-venv/bin/python"),
                   help="python of the virtual environment that has d3rlpy and minari")
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--updates", type=int, default=20_000, help="updates of every run (default 20000)")
    p.add_argument("--eval-every", type=int, default=5000, help="updates between evaluations (default 5000)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 on each side (default 3)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10, as lite)")
    p.add_argument("--target-action", choices=("sampled", "mean"), default="sampled",
                   help="our CQL's next action in the critic's target: sampled (our default) or the policy's "
                        "mean action (d3rlpy's convention)")
    p.add_argument("--root", default=None, help="datasets directory (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    p.add_argument("--out", default="peer_scores.json", help="JSON file of both curves (default peer_scores.json)")
    p.add_argument("--peer-from", default=None, metavar="JSON",
                   help="take d3rlpy's scores from an earlier output of this script instead of training it again "
                        "(its d3rlpy settings, updates, evaluation and seeds must be this run's; e.g. to compare "
                        "--target-action mean against the same d3rlpy runs)")
    args = p.parse_args(argv)
    for name in ("updates", "eval_every", "seeds", "episodes"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.updates % args.eval_every:
        p.error(f"--updates ({args.updates}) must be a multiple of --eval-every ({args.eval_every}): "
                "both sides are scored at the same update counts")
    if args.peer_from and os.path.realpath(args.peer_from) == os.path.realpath(args.out):
        p.error(f"--out {args.out} is the --peer-from file: writing it would lose the runs read from it; "
                "give --out another file")
    if args.peer_from and not os.path.isfile(args.peer_from):
        p.error(f"--peer-from {args.peer_from}: no such file (an earlier --out of this script)")
    if not args.peer_from and not os.path.exists(args.peer_python):
        p.error(f"no python at {args.peer_python}: create the d3rlpy venv first (see this script's help)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")  # gymnasium's and torch's notices would bury the table
    os.environ.setdefault("D4RL_LITE_ENV_WORKERS", "1")  # one process: the scores do not depend on it
    import torch

    import d4rl_lite
    from d4rl_lite.datasets.catalogue import parse_dataset_name
    from d4rl_lite.datasets.locations import datasets_root
    from d4rl_lite.tasks import get_task

    torch.set_num_threads(1)
    dataset = d4rl_lite.load_dataset(DATASET, root=args.root)
    task = get_task(dataset.metadata["task"])
    minari_id, minari_root = parse_dataset_name(DATASET).dataset_id, str(datasets_root(args.root))
    steps = list(range(args.eval_every, args.updates + 1, args.eval_every))
    seeds = list(range(args.seeds))
    report: dict = {"dataset": DATASET, "minari_id": minari_id, "updates": args.updates, "eval_every": args.eval_every,
                    "episodes": args.episodes, "seeds": seeds, "precision": "fp32", "threads": 1, "algorithms": {}}
    print(f"{DATASET} ({minari_id}), {args.updates} updates scored every {args.eval_every}, {args.episodes} episodes, "
          f"seeds {seeds}, fp32, 1 thread", flush=True)
    report["dataset_checksum"] = dataset.metadata["checksum"]
    prepared = prepare(args, dataset)
    # Checked before anything trains:
    reused = reuse_earlier(args, prepared, steps, seeds, report["dataset_checksum"]) if args.peer_from else {}
    with tempfile.TemporaryDirectory(prefix="peer_scores_") as work:
        for algo, (settings, spec) in prepared.items():
            ours: dict[int, dict[int, float]] = {}
            peer: dict[int, dict[int, float]] = {}
            times = {"ours": 0.0, "d3rlpy_train": 0.0, "d3rlpy_eval": 0.0}
            earlier = reused.get(algo)
            if earlier is not None:
                times.update(earlier["seconds"])  # d3rlpy's training and evaluation, when it was run
            for seed in seeds:
                t0 = time.perf_counter()
                ours[seed] = run_ours(algo, dataset, settings, seed, args, os.path.join(work, f"{algo}_ours_{seed}"))
                times["ours"] += time.perf_counter() - t0
                if earlier is not None:
                    peer[seed], summary = earlier["scores"][seed], earlier["summary"]
                else:
                    peer[seed], summary, seconds = peer_seed(args, spec, seed, task, work, minari_id, minari_root)
                    times["d3rlpy_train"] += seconds[0]
                    times["d3rlpy_eval"] += seconds[1]
                print(f"  {algo} seed {seed}: ours {ours[seed].get(args.updates, float('nan')):.1f}, "
                      f"d3rlpy {peer[seed].get(args.updates, float('nan')):.1f} at {args.updates}"
                      + (f" (from {args.peer_from})" if earlier is not None else ""), flush=True)
            notes = [n for n in [TARGET_NOTE[args.target_action] if algo == "cql" else None, *UNMATCHED[algo]] if n]
            print(f"\n{algo}: normalized score (our evaluation), d3rlpy {summary['version']}, "
                  f"{summary['transitions']} transitions on its side")
            print("\n".join(curve_rows(steps, ours, peer)))
            print("not matched:\n" + "\n".join(f"  - {n}" for n in notes) + "\n", flush=True)
            report["d3rlpy_version"] = summary["version"]
            report["algorithms"][algo] = algo_entry(steps, settings, spec, ours, peer, notes, times)
            if earlier is not None:
                report["algorithms"][algo]["d3rlpy"]["scores_from"] = args.peer_from
            with open(args.out, "w") as f:  # after each algorithm: a long run keeps what it finished
                json.dump(report, f, indent=1)
            print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
