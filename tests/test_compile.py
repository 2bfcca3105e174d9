"""The opt-in compiled update (train --compile): the same run as eager within float rounding, solo
and as a population, and a clear refusal where an algorithm's update is not compiled.

Compilation is slow on a CPU: these tests compile one algorithm (TD3+BC: random target noise,
two optimizer phases, an actor step every other update) at tiny sizes; about a minute in all here.
"""

from __future__ import annotations

import torch

from d4rl_lite.algorithms import get_algorithm
from d4rl_lite.algorithms.compiled import compile_update
from d4rl_lite.algorithms.population import member_state_dict
from d4rl_lite.algorithms.settings import make_config

# Compiled kernels fuse and reorder float arithmetic: agreement is to rounding, not bit for bit.
# Measured over 4 updates at 2x256 (scripts in docs/how-to/compile.md): at most 2e-6 relative in the
# metrics, 3e-7 in the weights; the bounds leave room for other CPUs' vector widths.
RTOL, ATOL = 1e-4, 1e-5
UPDATES = 4  # two actor steps (policy_freq 2), both branches of the update compiled


def _batches(members: int, n: int = UPDATES) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    lead = (members,) if members else ()
    return [{"observations": torch.randn(*lead, 32, 5, generator=g),
             "actions": torch.rand(*lead, 32, 2, generator=g) * 2 - 1,
             "rewards": torch.randn(*lead, 32, generator=g),
             "next_observations": torch.randn(*lead, 32, 5, generator=g),
             "terminals": (torch.rand(*lead, 32, generator=g) < 0.1).float()} for _ in range(n)]


def _run(algo, batches) -> list[dict[str, torch.Tensor]]:
    out = []
    for batch in batches:
        out.append({k: v.detach().clone() for k, v in algo.update(batch).items()})
        algo.step += 1
    return out


def _weights(algo) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v for name, module in algo._state_items().items() if isinstance(module, torch.nn.Module)
            for k, v in module.state_dict().items()}


def test_compiled_td3_bc_updates_agree_with_eager_solo_and_as_a_population(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    cls = get_algorithm("td3_bc")
    cfg = make_config(cls.Config, {"hidden": (16, 16), "batch_size": 32})
    for members in (0, 2):
        make = ((lambda: cls.population(5, 2, cfg, [3, 4], device="cpu")) if members else
                (lambda: cls(5, 2, cfg, device="cpu", seed=3)))
        eager = make()
        eager_metrics = _run(eager, _batches(members))
        compiled = make()  # a solo run reseeds the global stream: the same draws as the eager run's
        compile_update(compiled, quiet=True)
        compiled_metrics = _run(compiled, _batches(members))
        for e, c in zip(eager_metrics, compiled_metrics):
            assert e.keys() == c.keys()
            for key in e:
                torch.testing.assert_close(c[key], e[key], rtol=RTOL, atol=ATOL, msg=key)
        e_w, c_w = _weights(eager), _weights(compiled)
        moved = max((e_w[k] - _weights(make())[k]).abs().max().item() for k in e_w)
        assert moved > 1e-3  # the updates trained: agreement is not of untouched weights
        for key in e_w:
            torch.testing.assert_close(c_w[key], e_w[key], rtol=RTOL, atol=ATOL, msg=key)
        if members:  # a member's state is still its solo run's layout (checkpoints, resume)
            assert member_state_dict(compiled, 1).keys() == member_state_dict(eager, 1).keys()


def test_compile_refused_in_one_line_for_an_algorithm_it_does_not_compile(capsys):
    from d4rl_lite.cli import main

    code = main(["train", "bcq", "hopper-random-v0", "--compile", "--steps", "10"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--compile" in err and "bcq" in err and "without --compile" in err


def test_compile_is_recorded_in_the_config_and_not_part_of_the_run(tmp_path, monkeypatch):
    import d4rl_lite
    from d4rl_lite.datasets.builders import build_dataset
    from d4rl_lite.files import read_record
    from d4rl_lite.training.offline import TrainConfig, train

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    build_dataset("pointmaze-umaze-dense-expert-v0", size=300, seed=0, root=tmp_path / "data")
    data = d4rl_lite.load_dataset("pointmaze-umaze-dense-expert-v0", root=tmp_path / "data")
    common = dict(seed=0, device="cpu", log_every=10, eval_every=20, eval_episodes=1, checkpoint_every=10)
    train("bc", data, TrainConfig(steps=10, compile=True, **common), {"hidden": (8, 8)}, run_dir=tmp_path / "run")
    assert read_record(tmp_path / "run" / "config.json")["train"]["compile"] is True
    record = train("bc", data, TrainConfig(steps=20, **common), {"hidden": (8, 8)}, run_dir=tmp_path / "run")
    assert record["steps"] == 20  # the same run, continued eagerly
    assert read_record(tmp_path / "run" / "config.json")["train"]["compile"] is False
