import numpy as np
import pytest

from d4rl_lite.errors import ReferenceScoreUnavailable, UnknownNameError
from d4rl_lite.production.references import measure_random_reference
from d4rl_lite.envs.policies import UniformRandomPolicy
from d4rl_lite.evaluation.evaluate import evaluate
from d4rl_lite.tasks import TASKS, ReferenceScore, Task, get_task


def test_registry_has_every_required_task_with_its_protocol():
    expected = {"hopper": (11, 3), "halfcheetah": (17, 6), "walker2d": (17, 6), "ant": (105, 8)}
    for name, (obs, act) in expected.items():
        t = get_task(name)
        assert (t.observation_dim, t.action_dim, t.horizon) == (obs, act, 1000)
        assert t.env_id.endswith("-v5")
    for maze, horizon in (("umaze", 300), ("medium", 600), ("large", 800)):
        for suffix in ("", "-dense"):
            t = get_task(f"pointmaze-{maze}{suffix}")
            assert t.horizon == horizon and t.eval_episodes == 100 and t.eval_goal_cell is not None
            assert t.observation_dim == 6 and not t.can_terminate
    assert not get_task("halfcheetah").can_terminate and get_task("hopper").can_terminate


def test_unknown_task_suggests_the_closest_name():
    with pytest.raises(UnknownNameError, match=r"unknown task 'hoppr'.*Did you mean 'hopper'"):
        get_task("hoppr")


def test_env_respects_horizon_and_maze_goal_cell():
    t = get_task("pointmaze-medium")
    env = t.make_env()
    obs, _ = env.reset(seed=3, options=t.eval_reset_options())
    # Goal cell (6, 6) of the 8x8 medium maze: cell centres are 1 m apart, maze centred at 0.
    assert np.allclose(obs["desired_goal"], [2.5, -2.5], atol=0.3)
    assert env.spec.max_episode_steps == 600


def test_every_task_has_a_measured_ref_min_and_honest_ref_max():
    for t in TASKS.values():
        if t.domain == "skill":  # a low-level skill (the ant mazes' walker) is not scored by the benchmark
            assert t.ref_min.value is None and t.ref_max.value is None, t.name
            continue
        assert t.ref_min.value is not None and not t.ref_min.provisional, t.name
        if t.domain == "antmaze":  # D4RL's references by definition: 0 and 1, the score is the success rate
            assert (t.ref_min.value, t.ref_max.value) == (0.0, 1.0) and "D4RL" in t.ref_min.how
            continue
        assert "random" in t.ref_min.how and t.ref_min.details["episodes"] == 100
        if t.ref_max.value is None:
            assert t.ref_max.provisional and "provisional" in t.ref_max.how


def test_stored_ref_min_reproduces_exactly_on_this_protocol():
    # Hopper's random episodes are short, so the full 100-episode protocol runs in about a second.
    t = get_task("hopper")
    again = measure_random_reference(t, episodes=100)
    assert again["value"] == pytest.approx(t.ref_min.value, rel=1e-9)


def test_evaluation_is_independent_of_the_number_of_env_copies():
    t = get_task("hopper")
    a = evaluate(t, UniformRandomPolicy(t, 5), episodes=7, num_envs=7)
    b = evaluate(t, UniformRandomPolicy(t, 5), episodes=7, num_envs=2)
    assert np.array_equal(a.returns, b.returns) and np.array_equal(a.lengths, b.lengths)
    assert a.returns.std() > 0  # different seeds really give different episodes


class _KnownRefs(Task):
    @property
    def ref_min(self):
        return ReferenceScore(10.0, False, "test")

    @property
    def ref_max(self):
        return ReferenceScore(110.0, False, "test")


def test_normalized_score_formula():
    base = get_task("hopper")
    t = _KnownRefs(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    assert t.normalized_score(60.0) == pytest.approx(50.0)
    assert np.allclose(t.normalized_score([10.0, 110.0, 0.0]), [0.0, 100.0, -10.0])


class _ProvisionalMax(_KnownRefs):
    @property
    def ref_max(self):
        return ReferenceScore(None, True, "provisional: expert not trained yet")


def test_normalized_score_refuses_while_ref_max_is_provisional():
    base = get_task("hopper")
    t = _ProvisionalMax(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    with pytest.raises(ReferenceScoreUnavailable, match="no measured ref_max.*expert not trained"):
        t.normalized_score(100.0)


def test_making_halfcheetah_prints_no_mujoco_deprecation_notice(capfd):
    # MuJoCo prints it from C, once per model compile (one per env copy): fd-level capture sees it.
    env = get_task("halfcheetah").make_env()
    env.close()
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
