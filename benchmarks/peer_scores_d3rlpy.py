"""The d3rlpy side of ``peer_scores.py``: the script its venv runs, and what the two libraries do
differently that the settings at hand cannot match (d3rlpy 2.8, read in its source)."""

# Where the two libraries cannot be made to agree with the settings at hand (d3rlpy 2.8, read in its source).
UNMATCHED = {
    "cql": [
        ("update order: d3rlpy steps the critics first, then the actor and temperature (on the updated critics); "
         "ours the actor and temperature first, then the critics"),
        ("temperature loss: d3rlpy -alpha (log pi + target entropy), ours -log alpha (log pi + target entropy) "
         "(the CQL authors', CORL's); the same direction, Adam's steps differ slightly"),
        ("terminal transitions: d3rlpy's next observation there is zeros (its pi(s') actions in the gap are drawn "
         "at it), ours the recorded next state; the last step of a truncated episode is no transition for d3rlpy"),
        "random streams: each library draws its own; a seed of one is not the same seed of the other",
    ],
    "iql": [
        ("update order: d3rlpy steps V and Q together (one optimizer, V's and Q's losses summed, Q's target from "
         "V before the step), then the actor with V after it; ours V, then Q (target from the updated V), then the "
         "actor with the advantage of V before its step"),
        ("policy std: d3rlpy log std = -5 + 7 sigmoid(w) (starts at -1.5), ours a parameter clamped to [-5, 2] "
         "(starts at 0)"),
        ("terminal transitions: d3rlpy's next observation there is zeros (masked in the target); the last step of "
         "a truncated episode is no transition for d3rlpy"),
        "random streams: each library draws its own; a seed of one is not the same seed of the other",
    ],
}
TARGET_NOTE = {"sampled": "CQL's target: d3rlpy values s' at the policy's mean action, ours at a sampled one "
                          "(target_action=sampled, the CQL authors' code and CORL)",
               "mean": None}  # --target-action mean: the same convention as d3rlpy

PEER_SCRIPT = r'''
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch, minari, d3rlpy
from d3rlpy.models.encoders import VectorEncoderFactory

spec = json.loads(sys.argv[1])
torch.set_num_threads(1)
d3rlpy.seed(spec["seed"])
columns = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
for ep in minari.load_dataset(spec["minari_id"]).iterate_episodes():
    columns["observations"].append(ep.observations[:-1])  # Minari keeps the final observation too
    columns["actions"].append(ep.actions)
    columns["rewards"].append(ep.rewards)
    columns["terminals"].append(ep.terminations)
    ends = np.asarray(ep.truncations, dtype=bool).copy()
    ends[-1] = not ep.terminations[-1]  # every episode ends, as d3rlpy requires
    columns["timeouts"].append(ends)
data = {k: np.concatenate(v).astype(np.float32) for k, v in columns.items()}
dataset = d3rlpy.dataset.MDPDataset(**data)

cfg_cls = getattr(d3rlpy.algos, spec["config_class"])
kwargs = dict(spec["settings"])
for field in cfg_cls.__dataclass_fields__:
    if field.endswith("encoder_factory"):
        hidden = spec["actor_hidden"] if field.startswith("actor") else spec["critic_hidden"]
        kwargs[field] = VectorEncoderFactory(hidden_units=hidden)
if spec["obs_mean"] is not None:  # our statistics, our floor on the std: the same standardization
    kwargs["observation_scaler"] = d3rlpy.preprocessing.StandardObservationScaler(
        mean=np.asarray(spec["obs_mean"]), std=np.asarray(spec["obs_std"]), eps=0.0)
if spec["reward_multiplier"] is not None:
    kwargs["reward_scaler"] = d3rlpy.preprocessing.MultiplyRewardScaler(multiplier=spec["reward_multiplier"])
if spec["actor_cosine_steps"] is not None:
    kwargs["actor_optim_factory"] = d3rlpy.optimizers.AdamFactory(
        lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=spec["actor_cosine_steps"]))
algo = cfg_cls(**kwargs).create(device="cpu:0")

probe = np.random.default_rng(0).standard_normal((7, data["observations"].shape[1])).astype(np.float32)
t0, trained = time.perf_counter(), 0.0
for epoch, _ in algo.fitter(dataset, n_steps=spec["updates"], n_steps_per_epoch=spec["eval_every"],
                            logger_adapter=d3rlpy.logging.NoopAdapterFactory(), show_progress=False,
                            save_interval=10**9, experiment_name="peer_scores", with_timestamp=False):
    trained += time.perf_counter() - t0
    path = os.path.join(spec["out_dir"], f"policy_{epoch * spec['eval_every']}.pt")
    rng = torch.get_rng_state()  # exporting draws a dummy input: training must not depend on when it exports
    algo.save_policy(path)
    torch.set_rng_state(rng)
    exported = torch.jit.load(path)(torch.from_numpy(probe)).detach().numpy()
    assert np.allclose(exported, algo.predict(probe), atol=1e-6), "the exported policy is not predict's"
    print(json.dumps({"step": epoch * spec["eval_every"], "policy": path}), flush=True)
    t0 = time.perf_counter()
print(json.dumps({"version": d3rlpy.__version__, "train_seconds": trained, "transitions": dataset.transition_count}))
'''
