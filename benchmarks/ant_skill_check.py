"""How well the ant's walking skill (task ant-goal) walks: targets reached and metres gained.

Runs the deterministic actor of a ladder entry or a weights file for a few episodes of AntGoal-v0
(fixed reset seeds) and prints, per episode, the targets reached, the distance gained towards the
current target, the control cost and the steps survived.

    python benchmarks/ant_skill_check.py d4rl_lite/datasets/behavior/progress/ant-goal-seed0/ladder/step_00050000.safetensors
    python benchmarks/ant_skill_check.py RUN_DIR/weights.safetensors --episodes 10
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="a ladder entry (actor weights) or a run's weights.safetensors snapshot")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--hidden", default="256,256", help="actor hidden sizes (default 256,256)")
    args = parser.parse_args()

    from safetensors.torch import load_file

    from d4rl_lite.nets import TanhGaussianPolicy
    from d4rl_lite.tasks import get_task

    task = get_task("ant-goal")
    actor = TanhGaussianPolicy(task.observation_dim, task.action_dim, tuple(int(h) for h in args.hidden.split(",")))
    weights = load_file(args.weights)
    if any(k.startswith("actor.") for k in weights):  # a run snapshot holds actor, critics and temperature
        weights = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith("actor.")}
    actor.load_state_dict(weights)
    env = task.make_env()
    reached = []
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=2000 + ep)
        gained = ctrl = 0.0
        for t in range(task.horizon):
            with torch.no_grad():
                action = actor.act(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, _, terminated, truncated, info = env.step(action)
            gained += info["reward_progress"] * env.unwrapped.dt
            ctrl += info["reward_ctrl"]
            if terminated or truncated:
                break
        reached.append(info["targets_reached"])
        print(f"episode {ep}: {info['targets_reached']} targets reached, {gained:.2f} m gained towards targets, "
              f"control cost {ctrl:.1f}, {t + 1} steps")
    print(f"mean targets reached per {task.horizon}-step episode: {np.mean(reached):.2f}")


if __name__ == "__main__":
    main()
