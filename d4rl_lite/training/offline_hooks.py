"""What offline training adds to the loop, per member of a population: log lines, evaluations
under the task's protocol (kept as the run's history for its result), exact-resume checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from d4rl_lite.errors import ReferenceScoreUnavailable
from d4rl_lite.training.data import RewardTransform
from d4rl_lite.training.logging import RunLogger
from d4rl_lite.training.run_files import save_checkpoint


class MemberHooks:
    """The loop's hooks for a population: each member's own hooks, called in turn."""

    def __init__(self, hooks: list[OfflineHooks]):
        self.hooks = hooks

    def log(self, step: int, values: list[dict[str, float]]) -> None:
        for hook, member_values in zip(self.hooks, values):
            hook.log(step, member_values)

    def evaluate(self, step: int) -> None:
        algo = self.hooks[0].algo
        if getattr(algo, "members", 0) > 1:  # every member's episodes at once, one policy call per step
            from d4rl_lite.evaluation.evaluate import evaluate_population

            results = evaluate_population(self.hooks[0].task, algo, episodes=self.hooks[0].tc.eval_episodes,
                                          gamma=self.hooks[0].gamma)
            for hook, result in zip(self.hooks, results):
                hook.record_evaluation(step, result)
        else:
            for hook in self.hooks:
                hook.evaluate(step)

    def checkpoint(self, step: int) -> None:
        for hook in self.hooks:
            hook.checkpoint(step)


class OfflineHooks:
    """What offline training adds to the loop: JSONL/W&B log lines, evaluations with the task's
    protocol (kept as ``history`` for the result), and exact-resume checkpoints. An evaluation also
    logs, for an algorithm with Q critics, the critic's value at the episodes' first states
    (``eval/predicted_value``) next to their discounted return in the rewards it learns
    (``eval/discounted_return``): the over-estimation check compares the two, as the CQL paper does."""

    def __init__(self, algo, member: int, task, tc: Any, logger: RunLogger, history: list[dict[str, Any]],
                 ckpt_path: Path, gen: torch.Generator, identity: str, start_step: int,
                 rewards_as_trained: RewardTransform, gamma: float):
        self.algo, self.member, self.task, self.tc, self.logger, self.history = algo, member, task, tc, logger, history
        self.rewards_as_trained = rewards_as_trained
        self.gamma = gamma if getattr(algo, "critic", None) is not None else None  # None: no value to compare
        self.ckpt_path, self.gen, self.identity = ckpt_path, gen, identity
        self.bar: Any = None
        self._clock = (time.perf_counter(), start_step)  # (time, step) of the last log line or evaluation

    def log(self, step: int, values: dict[str, float]) -> None:
        now, (then, step_then) = time.perf_counter(), self._clock
        values["time/updates_per_s"] = (step - step_then) / max(now - then, 1e-9)
        self._clock = (now, step)
        self.logger.log(step, values)
        if self.bar is not None:
            last = self.history[-1].get("eval/normalized_score") if self.history else None
            self.bar.set_postfix_str(f"{values['time/updates_per_s']:.0f} upd/s"
                                     + (f", score {last:.1f}" if last is not None else ""))

    def evaluate(self, step: int) -> None:
        from d4rl_lite.evaluation.evaluate import evaluate

        self.record_evaluation(step, evaluate(self.task, self.algo.member_policy(self.member), episodes=self.tc.eval_episodes,
                                              gamma=self.gamma))

    def record_evaluation(self, step: int, result: Any) -> None:
        ev = {"eval/return_mean": float(result.returns.mean()), "eval/return_std": float(result.returns.std())}
        try:
            ev["eval/normalized_score"] = float(self.task.normalized_score(result.returns.mean()))
        except ReferenceScoreUnavailable:
            pass
        if result.successes is not None:
            ev["eval/success_rate"] = float(result.successes.mean())
        if result.discounted_returns is not None:
            predicted = self.algo.predicted_values(result.start_observations, self.member)
            ev["eval/predicted_value"] = float(predicted.mean())
            ev["eval/discounted_return"] = float(self.rewards_as_trained.discounted(
                result.discounted_returns, result.lengths, self.gamma).mean())
        self.logger.log(step, ev)
        self.history.append({"step": step, **ev})
        if self.bar is not None and "eval/normalized_score" in ev:
            self.bar.set_postfix_str(f"score {ev['eval/normalized_score']:.1f}")
        self._clock = (time.perf_counter(), step)  # evaluation time is not update time

    def checkpoint(self, step: int) -> None:
        save_checkpoint(self.ckpt_path, self.algo, self.member, self.gen, step, self.identity)


