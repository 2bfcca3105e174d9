"""What fine-tuning adds to offline training's hooks: the online episodes' returns and, for an algorithm
with a fitted behaviour model (BEAR, BRAC), its log-likelihood on offline and on online data in each
log line; checkpoints that hold the online experience (``training/finetune.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from d4rl_lite.errors import ReferenceScoreUnavailable
from d4rl_lite.training.offline_hooks import MemberHooks, OfflineHooks
from d4rl_lite.training.run_files import save_checkpoint

# Transitions of each kind the behaviour model's log-likelihood is averaged over, at each log line.
LIKELIHOOD_BATCH = 512


class FinetuneHooks(OfflineHooks):
    """One member's hooks: offline training's, plus its online episodes in the log and its online
    experience in its checkpoints."""

    def __init__(self, *args: Any, online: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.online = online

    def log(self, step: int, values: dict[str, float]) -> None:
        returns = self.online.take_finished(self.member)
        if returns:  # the episodes that ended in this log interval
            mean = float(np.mean(returns))
            values["online/episode_return"], values["online/episodes"] = mean, len(returns)
            try:
                values["online/normalized_return"] = float(self.task.normalized_score(mean))
            except ReferenceScoreUnavailable:
                pass
        super().log(step, values)

    def checkpoint(self, step: int) -> None:
        save_checkpoint(self.ckpt_path, self.algo, self.member, self.gen, step, self.identity,
                        extra=self.online.checkpoint_extra(self.member))


class FinetuneMemberHooks(MemberHooks):
    """The population's hooks; each log line also gets, when the algorithm fits a behaviour model, its
    log-likelihood (``behavior_log_likelihood``) on offline data and on the member's online data,
    ``finetune/behavior_loglik_offline`` and ``..._online``: the quantity Nair et al. 2020 show collapsing.
    The rows are drawn from a generator seeded by the step, apart from every training stream."""

    def __init__(self, hooks: list[FinetuneHooks], replay: Any):
        super().__init__(hooks)
        self.replay = replay

    def log(self, step: int, values: list[dict[str, float]]) -> None:
        algo = self.hooks[0].algo
        if callable(getattr(algo, "behavior_log_likelihood", None)) and self.replay.size:
            gen = torch.Generator(device=algo.device).manual_seed(step)
            off = torch.randint(0, self.replay.data.size, (LIKELIHOOD_BATCH,), device=algo.device, generator=gen)
            on = torch.randint(0, self.replay.size, (LIKELIHOOD_BATCH,), device=algo.device, generator=gen)
            offline = {k: t[off].expand(algo.members, *t[off].shape) for k, t in self.replay.data.tensors.items()}
            online = self.replay.online_rows(on.expand(algo.members, -1))
            lik = {name: algo.behavior_log_likelihood(rows["observations"], rows["actions"]).mean(-1).tolist()
                   for name, rows in (("offline", offline), ("online", online))}
            for m, member_values in enumerate(values):
                member_values["finetune/behavior_loglik_offline"] = lik["offline"][m]
                member_values["finetune/behavior_loglik_online"] = lik["online"][m]
        super().log(step, values)
