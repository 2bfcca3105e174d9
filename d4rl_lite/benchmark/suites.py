"""Benchmark suites as files: algorithms x datasets x seeds x training budget x evaluation schedule.

A suite is a JSON file::

    {
      "name": "smoke",
      "description": "...",
      "algorithms": ["bc", "iql", ...],                         # or "all": every registered offline algorithm
      "datasets": {"hopper-random-v0": {"size": 20000}, ...},   # build sizes (built when missing)
      "seeds": [0],
      "steps": 1000, "eval_every": 500, "eval_episodes": 5, "log_every": 250, "checkpoint_every": 500,
      "settings": {"all": {"hidden": [64, 64]}, "cql": {"cql_weight": 5}},
      "only_on": {"cql": ["hopper-random-v0"]},                 # optional: an algorithm runs on these datasets only
      "imports": ["my_algo"],                                    # optional: modules registering your algorithms
      "finetune": {"env_steps": 20000}                           # optional: online fine-tuning after (finetune_suite.py)
    }

``settings.all`` applies to every algorithm whose config has the key ("hidden" stands for every
layer-size field (declared ``Layers``); a key no registered algorithm has is refused as a misspelling). ``hidden`` and
the shared settings of ``AlgorithmConfig`` are meant for every algorithm: one that none of an
algorithm's fields takes is refused, naming both. Per-algorithm settings must exist in that
algorithm's config. ``imports`` run only with ``bench --allow-imports`` (``suite_checks.py`` says
what a suite file may make d4rl-lite do).

A dataset may have a budget of its own, for data that needs longer training than the rest (every
algorithm on it trains that long; a table row holds one budget)::

    "hopper-medium-replay-v0": {"steps": 60000, "eval_every": 5000,
                                "settings": {"all": {"actor_lr_schedule_steps": 60000}}}

Its ``settings`` lie over the suite's (``all`` then the algorithm's own, as above).
The shipped suites live in ``suites/`` beside this module (``d4rl-lite bench --list`` shows them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from d4rl_lite.benchmark import suite_checks
from d4rl_lite.benchmark.suite_checks import shipped_suites  # noqa: F401 (the shipped suites, listed where suites are)
from d4rl_lite.errors import UserInputError

DATASET_KEYS = ("size", "seed", "steps", "eval_every", "settings")  # what a suite may say about one dataset


@dataclass
class Suite:
    name: str
    algorithms: list[str]
    datasets: dict[str, dict[str, Any]]
    seeds: list[int]
    steps: int
    eval_every: int
    eval_episodes: int | None = None
    log_every: int = 1000
    checkpoint_every: int = 5000
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    imports: list[str] = field(default_factory=list)  # modules registering user algorithms; run only when allowed
    precision: str = "fp32"  # "bf16": the updates' matrix products under bf16 autocast (train --precision)
    compile: bool = False  # torch.compile of the updates (train --compile); refused for an algorithm it does not compile
    # The validity checks (benchmark/patterns.json) its report evaluates; None: those its datasets allow.
    patterns: list[str] | None = None
    # {algorithm: the datasets it runs on}: for an algorithm too costly to run everywhere (its other
    # cells stay empty in the table); algorithms not named run on every dataset.
    only_on: dict[str, list[str]] = field(default_factory=dict)
    # Online fine-tuning after the offline budget ({"env_steps": N, ...}: benchmark/finetune_suite.py); None: none.
    finetune: dict[str, Any] | None = None

    def import_plugins(self) -> None:
        """Import the suite's modules (running their code: only once the user allowed it)."""
        suite_checks.import_modules(self.imports, self.name)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Suite:
        """Read and check a suite: a shipped suite's name or a suite file's path. Its imports are
        not run (``run_suite`` runs them when allowed); its algorithms they register are checked then."""
        path = suite_checks.suite_file(name_or_path)
        try:
            suite = cls(**suite_checks.read_suite(path))
        except TypeError as e:
            raise UserInputError(f"{path}: not a valid suite file ({e}); see d4rl_lite/benchmark/suites.py for the format") from None
        suite.validate()
        return suite

    def validate(self) -> None:
        """Refuse, with one line, a suite whose fields have the wrong type or range, that names what
        does not exist, or sets what no algorithm it runs takes; "all" algorithms become their names."""
        from d4rl_lite.algorithms import ALGORITHMS

        if self.algorithms == "all":  # every registered offline algorithm (not naive baselines)
            self.algorithms = sorted(n for n, cls in ALGORITHMS.items() if not cls.naive_baseline)
        self._check_fields()
        # Algorithms its imports register are checked once the imports have run (``run_suite``).
        known = [a for a in self.algorithms if a in ALGORITHMS or not self.imports]
        self._check_names(known)
        self._check_shared_settings(known)
        self._check_own_settings(known)

    def _need(self, ok: bool, what: str) -> None:
        if not ok:
            raise UserInputError(f"suite {self.name!r}: {what}; see d4rl_lite/benchmark/suites.py for the format")

    def _name_of(self, value: Any, what: str) -> None:
        """``value`` names a results directory: it must stay inside."""
        from d4rl_lite.paths import path_name

        try:
            path_name(value, what)
        except UserInputError as e:
            raise UserInputError(f"suite {self.name!r}: {e}") from None

    def _check_fields(self) -> None:
        """Each field's type and range, as the file format says."""
        need = self._need
        self._name_of(self.name, "name")
        need(isinstance(self.algorithms, list) and all(isinstance(a, str) for a in self.algorithms),
             "algorithms must be a list of names")
        need(isinstance(self.datasets, dict) and all(isinstance(v, dict) for v in self.datasets.values()),
             "datasets must map names to {\"size\": N, \"seed\": S} objects")
        for name, spec in self.datasets.items():
            self._check_dataset_entry(name, spec)
        need(isinstance(self.seeds, list) and all(_whole(x, 0) for x in self.seeds), "seeds must be a list of whole numbers >= 0")
        for key in ("steps", "eval_every", "log_every", "checkpoint_every"):
            need(_whole(getattr(self, key), 1), f"{key} must be a whole number >= 1")
        need(self.eval_episodes is None or _whole(self.eval_episodes, 1), "eval_episodes must be a whole number >= 1")
        need(isinstance(self.settings, dict) and all(isinstance(v, dict) for v in self.settings.values()),
             "settings must map algorithm names (or \"all\") to objects")
        need(isinstance(self.imports, list) and all(suite_checks.is_module_name(m) for m in self.imports),
             "imports must be a list of module names (my_algo, package.my_algo)")
        need(isinstance(self.description, str), "description must be a string")
        need(self.precision in ("fp32", "bf16"), f"precision must be \"fp32\" or \"bf16\", got {self.precision!r}")
        need(isinstance(self.compile, bool), f"compile must be true or false, got {self.compile!r}")
        if self.patterns is not None:
            from d4rl_lite.benchmark.patterns import load_patterns

            known = load_patterns()
            need(isinstance(self.patterns, list) and all(p in known for p in self.patterns),
                 f"patterns must be a list of validity checks ({', '.join(known)})")
        if not self.algorithms or not self.datasets or not self.seeds:
            raise UserInputError(f"suite {self.name!r} needs algorithms, datasets and seeds")
        from d4rl_lite.benchmark.finetune_suite import plan_of

        plan_of(self)  # its fine-tuning block, checked (one line if wrong)

    def _check_dataset_entry(self, name: str, spec: dict[str, Any]) -> None:
        """One dataset's entry: only the keys a dataset takes, each of its type and range."""
        need = self._need
        unknown = sorted(set(spec) - set(DATASET_KEYS))
        need(not unknown, f"dataset {name} has unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(a dataset takes {', '.join(DATASET_KEYS)})")
        need(spec.get("size") is None or _whole(spec.get("size"), 1), "a dataset's size must be a whole number >= 1")
        need(_whole(spec.get("seed", 0), 0), "a dataset's seed must be a whole number >= 0")
        for key in ("steps", "eval_every"):
            need(_whole(spec.get(key, 1), 1), f"dataset {name}'s {key} must be a whole number >= 1")
        need(isinstance(spec.get("settings", {}), dict) and all(isinstance(v, dict) for v in spec.get("settings", {}).values()),
             f"dataset {name}'s settings must map algorithm names (or \"all\") to objects")

    def _check_names(self, known: list[str]) -> None:
        """Algorithm and dataset names that exist and make safe directory names; the ``known``
        algorithms' own settings exist in their configs; ``only_on`` names the suite's own."""
        from d4rl_lite.algorithms import get_algorithm
        from d4rl_lite.algorithms.compiled import check_compilable
        from d4rl_lite.algorithms.settings import make_config
        from d4rl_lite.datasets.catalogue import parse_dataset_name

        for algo in self.algorithms:
            self._name_of(algo, "algorithm")
        for algo in known:
            make_config(get_algorithm(algo).Config, self.algo_settings(algo))  # unknown names/keys raise here
            if self.compile:
                check_compilable(get_algorithm(algo))
        for name in self.datasets:
            parse_dataset_name(name)
            self._name_of(name, "dataset (its catalogue name, e.g. hopper-random-v0)")
        self._need(isinstance(self.only_on, dict) and all(
            a in self.algorithms and isinstance(ds, list) and ds and all(d in self.datasets for d in ds)
            for a, ds in self.only_on.items()),
            "only_on must map algorithms of the suite to non-empty lists of its datasets")

    def _check_shared_settings(self, known: list[str]) -> None:
        """An "all" key no registered algorithm has is a misspelling. (One that only algorithms outside
        the suite have is fine: a suite narrowed to some of its algorithms keeps its settings.)"""
        from d4rl_lite.algorithms import ALGORITHMS
        from d4rl_lite.algorithms.settings import setting_targets

        for where, settings in [("settings", self.settings)] + [
                (f"dataset {name}'s settings", spec.get("settings", {})) for name, spec in self.datasets.items()]:
            for key in settings.get("all", {}):
                self._need(len(known) < len(self.algorithms)
                           or any(setting_targets(cls.Config, key) for cls in ALGORITHMS.values()),
                           f"{where}.all has {key!r}, which no algorithm has (`d4rl-lite settings ALGO` lists them)")

    def _check_own_settings(self, known: list[str]) -> None:
        """Settings only for algorithms the suite runs; on each dataset, every shared setting reaches
        a field of each ``known`` algorithm and its networks fit the task (``suite_checks``)."""
        from d4rl_lite.algorithms import get_algorithm
        from d4rl_lite.algorithms.memory import too_big
        from d4rl_lite.algorithms.settings import make_config
        from d4rl_lite.datasets.catalogue import parse_dataset_name
        from d4rl_lite.tasks import get_task

        unknown = set(self.settings) - set(self.algorithms) - {"all"}
        if unknown:
            raise UserInputError(f"suite {self.name!r} has settings for algorithms it does not run: {sorted(unknown)}")
        for name, spec in self.datasets.items():
            unknown = set(spec.get("settings", {})) - set(self.algorithms) - {"all"}
            self._need(not unknown, f"dataset {name} has settings for algorithms the suite does not run: {sorted(unknown)}")
            for algo in known:
                if name not in self.only_on.get(algo, [name]):
                    continue
                cls = get_algorithm(algo).Config
                own = {**self.settings.get(algo, {}), **spec.get("settings", {}).get(algo, {})}
                problems = [suite_checks.unreached_shared_setting(where, settings, algo, cls, own) for where, settings
                            in (("settings", self.settings), (f"{name}'s settings", spec.get("settings", {})))]
                task = get_task(parse_dataset_name(name).task)
                problems.append(too_big(algo, name, make_config(cls, self.algo_settings(algo, name)), task.observation_dim,
                                        act_dim=task.action_dim))
                for problem in filter(None, problems):
                    raise UserInputError(f"suite {self.name!r}: {problem}")
        from d4rl_lite.benchmark.finetune_suite import online_memory_problem, plan_of

        plan = plan_of(self)  # its online buffers too, before any offline training
        if plan is not None and (problem := online_memory_problem(plan, self)):
            raise UserInputError(f"suite {self.name!r}: {problem}")

    def algo_settings(self, algo: str, dataset: str | None = None) -> dict[str, Any]:
        """``algo``'s settings in this suite: ``all``'s, then its own; on ``dataset``, that dataset's over them."""
        from d4rl_lite.algorithms import get_algorithm
        from d4rl_lite.algorithms.settings import hidden_fields, setting_targets

        out: dict[str, Any] = {}
        cls = get_algorithm(algo).Config
        layers = [self.settings] + ([dataset_entry(self.__dict__, dataset).get("settings", {})] if dataset is not None else [])
        for settings in layers:
            for key, value in settings.get("all", {}).items():
                # In a suite "hidden" is every network's layers, before an algorithm's own old name
                # "hidden" (BEAR's: its actor and critics only, as --set keeps it).
                targets = hidden_fields(cls) if key == "hidden" else setting_targets(cls, key)
                for f in targets:  # none: the key is for other algorithms
                    out[f] = tuple(value) if isinstance(value, list) else value
            for key, value in settings.get(algo, {}).items():
                out[key] = tuple(value) if isinstance(value, list) else value
        return out

    def steps_on(self, dataset: str) -> int:
        """Updates of every run on ``dataset``: its own budget, else the suite's."""
        return dataset_steps(self.__dict__, dataset)

    def eval_every_on(self, dataset: str) -> int:
        """Updates between evaluations of the runs on ``dataset``: its own, else the suite's."""
        return int(dataset_entry(self.__dict__, dataset).get("eval_every", self.eval_every))

    def runs(self) -> list[tuple[str, str, int]]:
        """Every (algorithm, dataset, seed) of the suite, datasets outermost."""
        return planned_runs(self.algorithms, self.datasets, self.seeds, self.only_on)


def _whole(v: Any, low: int) -> bool:
    """A whole number (not a bool) of at least ``low``."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def planned_runs(algorithms: list[str], datasets: list[str], seeds: list[int],
                 only_on: dict[str, list[str]]) -> list[tuple[str, str, int]]:
    """(algorithm, dataset, seed) for every run a suite plans, datasets outermost; an algorithm
    named in ``only_on`` runs on those datasets only."""
    return [(a, d, s) for d in datasets for a in algorithms for s in seeds if d in only_on.get(a, [d])]


def dataset_entry(suite: dict[str, Any], dataset: str) -> dict[str, Any]:
    """``dataset``'s entry in a suite description (its size, own budget, settings); {} for a
    dataset outside the suite or with nothing of its own, which then gets the suite's."""
    return suite["datasets"].get(dataset) or {}


def dataset_steps(suite: dict[str, Any], dataset: str) -> int:
    """Updates of every run on ``dataset`` in a suite description (a ``suite.json``): the dataset's
    own ``steps``, else the suite's."""
    return int(dataset_entry(suite, dataset).get("steps", suite["steps"]))


def budgets_apart(by_dataset: dict[str, int], usual: int) -> dict[int, list[str]]:
    """{budget: its datasets} for the datasets of ``by_dataset`` (dataset: updates) not trained ``usual``
    updates, budgets ascending: what a listing names besides the usual budget."""
    return {n: [d for d, m in by_dataset.items() if m == n] for n in sorted(set(by_dataset.values()) - {usual})}
