"""MkDocs hook: the reference pages, generated from the code at build time, and the results' stories.

Docs tooling: MkDocs with the Material theme, because the pages are plain Markdown like the README,
it installs with one pip package, and `mkdocs build --strict` fails on any broken link or anchor.
(Gymnasium and Minari build their sites with Sphinx, the Furo theme and MyST Markdown instead.
Material 9.8 announces its end of life for 2027-05-05, naming Zensical, which reads mkdocs.yml, as
its successor; the build prints that banner unless NO_MKDOCS_2_WARNING=1.)

A page asks for generated text with a placeholder line, ``<!-- generated: NAME [ARGUMENT] -->``:

- ``cli``: every verb of ``d4rl-lite`` from its argparse parser (``build_parser``);
- ``settings``: every algorithm's settings from its config's field docstrings (``setting_docs``, the
  source of ``d4rl-lite settings ALGO``) and its domain settings;
- ``tasks`` and ``catalogue``: the task registry and the dataset catalogue with its builders;
- ``modules`` and ``layers``: every module of the package with the first sentence of its
  docstring, and the import layers ``tests/test_layers.py`` enforces;
- ``file PATH``: a committed file of the repository (a results table), included as it is.

The story of each committed result (``results/<name>/README.md``), its tables and plots, and the
repository's ``CHANGELOG.md`` are added to the site, so the pages link to them. Nothing is fetched
from the network.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel

REPO = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"^<!-- generated: (?P<name>[a-z-]+)(?: (?P<arg>\S+))? -->$", re.M)
USAGE_WIDTH = 88

# The reference shows the package's own reference scores, not those this machine re-measured
# (``refs --store`` writes them to a user file that would otherwise override the shipped ones).
os.environ["D4RL_LITE_REFERENCE_SCORES"] = str(Path(tempfile.mkdtemp(prefix="d4rl_lite_docs_")) / "none.json")


# -- events ----------------------------------------------------------------------------------
def on_files(files: Files, config) -> Files:
    # Each results directory's story (in the nav), its tables, reports, plots and text outputs
    # (linked from the story), at their paths in the repository: links between them work in both.
    for path in sorted(p for pattern in ("*.md", "*.png", "*.txt") for p in REPO.glob(f"results/*/{pattern}")):
        level = InclusionLevel.UNDEFINED if path.name == "README.md" else InclusionLevel.NOT_IN_NAV
        files.append(File.generated(config, path.relative_to(REPO).as_posix(), abs_src_path=str(path), inclusion=level))
    files.append(File.generated(config, "changelog.md", abs_src_path=str(REPO / "CHANGELOG.md")))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    def fill(match: re.Match) -> str:
        name, arg = match["name"], match["arg"]
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: unknown placeholder {match[0]!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name](arg) if name == "file" else GENERATORS[name]()

    return PLACEHOLDER.sub(fill, markdown)


# -- helpers ---------------------------------------------------------------------------------
def cell(text: object) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


# -- d4rl-lite's verbs -----------------------------------------------------------------------
def cli_reference() -> str:
    from d4rl_lite.cli import build_parser

    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    short_help = {a.dest: a.help for a in verbs._choices_actions}
    out = [table(["verb", "what it does"], [[f"[`{v}`](#{v})", short_help.get(v, "")] for v in verbs.choices])]
    out += ["", "Options of `d4rl-lite` itself:", "", arguments_table(parser)]
    for verb, sub in verbs.choices.items():
        out += ["", f"## `d4rl-lite {verb}` {{#{verb}}}", "", sub.description or short_help.get(verb, ""), "",
                "```text", usage(sub), "```", "", arguments_table(sub)]
    return "\n".join(out)


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def arguments_table(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog)
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            takes = "" if action.nargs == 0 else " " + formatter._format_args(action, action.dest.upper())
            name = ", ".join(f"`{flag}{takes}`" for flag in action.option_strings)
        else:
            name = f"`{action.metavar or action.dest}`"
        described = formatter._expand_help(action) if action.help else ""
        if action.choices and not isinstance(action.choices, dict) and not action.metavar:
            described += f" (one of: {', '.join(map(str, action.choices))})"
        shown_default = all(action.default is not v for v in (None, False, argparse.SUPPRESS)) and action.nargs != 0
        rows.append([name, described, f"`{action.default}`" if shown_default else ""])
    return table(["argument", "what it does", "default"], rows)


# -- algorithms' settings --------------------------------------------------------------------
def settings_reference() -> str:
    import dataclasses
    import importlib
    from importlib import resources

    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.algorithms.settings import setting_docs

    domains = json.loads(resources.files("d4rl_lite.algorithms").joinpath("domain_settings.json").read_text())
    out = [" · ".join(f"[`{name}`](#{name})" for name in sorted(ALGORITHMS))]
    for name in sorted(ALGORITHMS):
        cls = ALGORITHMS[name]
        module = importlib.import_module(cls.__module__)
        docs, defaults = setting_docs(cls.Config), cls.Config()
        rows = []
        for field in dataclasses.fields(cls.Config):
            value = getattr(defaults, field.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            rows.append([f"`{field.name}`", f"`{shown}`", "yes" if field.name in cls.sweepable else "",
                         docs[field.name] or "(undocumented)"])
        out += ["", f"## `{name}` {{#{name}}}", "", first_paragraph(module.__doc__), "",
                f"Source: `{cls.__module__.replace('.', '/')}.py`, config `{cls.Config.__name__}`. "
                + ("Trains its seeds together as one population." if cls.supports_population
                   else "Trains its seeds one at a time."), "",
                table(["setting", "default", "sweepable", "what it does"], rows)]
        for domain, entry in domains.get(name, {}).items():
            given = ", ".join(f"`{k}={v}`" for k, v in entry["settings"].items())
            out += ["", f"On `{domain}` tasks a run starts from {given}. Source: {cell(entry['source']).rstrip('.')}."]
    return "\n".join(out)


# -- tasks and datasets ----------------------------------------------------------------------
def tasks_reference() -> str:
    from d4rl_lite.tasks import TASKS

    def ref(score) -> str:
        return f"{score.value:.1f}" if score.value is not None else "provisional"

    rows, variants = [], {}
    for t in TASKS.values():
        if t.variant_of:
            variants.setdefault(t.variant_of, []).append(t)
            continue
        rows.append([f"`{t.name}`", t.domain, f"`{t.env_id}`", t.horizon, t.observation_dim, t.action_dim,
                     ref(t.ref_min), ref(t.ref_max), t.eval_episodes, t.eval_goal_cell or ""])
    out = [table(["task", "domain", "environment", "horizon", "obs", "act", "ref_min", "ref_max", "eval episodes",
                  "goal cell"], rows), "", "Single-task variants (OGBench's protocol: start cell -> goal cell):", ""]
    vrows = [[f"`{t.name}`", t.eval_reset_cell, t.eval_goal_cell, ref(t.ref_max)]
             for group in variants.values() for t in group]
    return "\n".join(out + [table(["task", "start cell", "goal cell", "ref_max"], vrows)])


def catalogue_reference() -> str:
    from d4rl_lite.datasets.builders import BUILDERS
    from d4rl_lite.datasets.catalogue import KINDS, catalogue
    from d4rl_lite.tasks import TASKS

    out = []
    for domain, kinds in KINDS.items():
        rows = []
        for kind, what in kinds.items():
            builder = BUILDERS.get(domain, {}).get(kind)
            size = ("no builder yet" if builder is None else "the whole source" if builder.default_size is None
                    else f"{builder.default_size:,}")
            options = ", ".join(f"`{o}`" for o in builder.options) if builder else ""
            rows.append([f"`{kind}`", what, size, options])
        names = [d.alias for d in catalogue() if TASKS[d.task].domain == domain and not TASKS[d.task].variant_of]
        out += [f"## {domain} {{#{domain}}}", "", table(["kind", "what it holds", "default size", "options"], rows),
                "", "Names: " + ", ".join(f"`{n}`" for n in names) + ".", ""]
    return "\n".join(out)


# -- the package's modules -------------------------------------------------------------------
def modules_reference() -> str:
    package = REPO / "d4rl_lite"
    rows = []
    for path in sorted(package.rglob("*.py")):
        paragraph = first_paragraph(ast.get_docstring(ast.parse(path.read_text())))
        sentence = re.split(r"(?<!\bal)(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z(`])", paragraph, maxsplit=1)[0].rstrip(".")
        ends_open = sentence[-1:].isalnum() or sentence[-1:] in tuple(")`'")
        rows.append([f"`{path.relative_to(REPO).as_posix()}`", sentence + ("." if ends_open else "")])
    return table(["module", "its job"], rows)


def layers_reference() -> str:
    """The layers ``tests/test_layers.py`` enforces (its ``LAYERS`` literal), lowest first."""
    tree = ast.parse((REPO / "tests" / "test_layers.py").read_text())
    node = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "LAYERS")
    lines = [""]
    for layer in (" ".join(sorted(layer)) for layer in ast.literal_eval(node)):
        if len(lines[-1]) + len(layer) > USAGE_WIDTH - 8:
            lines.append("      ")
        lines[-1] += ("  ->  " if lines[-1] else "") + layer
    return "```text\n" + "\n".join(lines) + "\n```"


def committed_file(relative: str | None) -> str:
    path = (REPO / (relative or "")).resolve()
    if not relative or REPO not in path.parents or not path.is_file():
        raise PluginError(f"generated: file {relative!r} is not a file of the repository")
    return path.read_text().strip()


GENERATORS = {"cli": cli_reference, "settings": settings_reference, "tasks": tasks_reference,
              "catalogue": catalogue_reference, "modules": modules_reference, "layers": layers_reference,
              "file": committed_file}
