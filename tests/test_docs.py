"""The documentation site builds without a warning, its reference pages hold what the code defines,
and its examples run as written (the README's rule, tests/test_readme.py, applied to every page)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_readme import REPO, blocks, build_first_command_data, command_lines, run_python_block

DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
STORIES = sorted(REPO.glob("results/*/README.md"))
README_BLOCKS = set(blocks("python"))  # tests/test_readme.py runs those
DOC_BLOCKS = sorted({b for page in PAGES for b in blocks("python", page)} - README_BLOCKS)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as ``mkdocs build --strict`` writes it, built once for this module's tests."""
    tmp = tmp_path_factory.mktemp("docs_build")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1", "MPLCONFIGDIR": str(tmp / "mpl"),
           "XDG_CACHE_HOME": str(tmp / "cache")}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(tmp / "site")], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr  # --strict: any warning fails the build
    return tmp / "site"


def page_text(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text()


def test_every_page_and_story_is_in_the_site(site):
    for page in PAGES:
        relative = page.relative_to(DOCS).with_suffix("")
        assert (site / relative / "index.html").is_file() or relative.name == "index", relative
    for story in STORIES:
        assert (site / story.parent.relative_to(REPO) / "index.html").is_file(), story
    assert (site / "changelog" / "index.html").is_file()


def test_the_cli_reference_has_every_verb_and_flag(site):
    import argparse

    from d4rl_lite.cli import build_parser

    html = page_text(site, "reference/cli")
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert verbs.choices
    for verb, parser in verbs.choices.items():
        assert f'id="{verb}"' in html, verb
        for action in parser._actions:
            for flag in [] if isinstance(action, argparse._HelpAction) else action.option_strings:
                assert flag in html, f"{verb} {flag}"


def test_the_settings_reference_has_every_setting_with_its_default_and_docs(site):
    import dataclasses
    import html as html_lib

    from d4rl_lite.algorithms import ALGORITHMS
    from d4rl_lite.algorithms.settings import setting_docs

    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page_text(site, "reference/settings")))
    built_in = {n: c for n, c in ALGORITHMS.items() if c.__module__.startswith("d4rl_lite.algorithms.")
                and Path(sys.modules[c.__module__].__file__).exists()}
    assert len(built_in) >= 10
    for name, cls in built_in.items():
        docs = setting_docs(cls.Config)
        for field in dataclasses.fields(cls.Config):
            assert f"{field.name}" in text, f"{name}.{field.name}"
            if docs[field.name]:
                start = " ".join(docs[field.name].replace("`", "").split()[:6])
                assert start in text, f"{name}.{field.name}'s docstring"


def test_the_catalogue_reference_names_every_dataset(site):
    from d4rl_lite.datasets.catalogue import catalogue
    from d4rl_lite.tasks import TASKS

    html = page_text(site, "reference/catalogue")
    for name in catalogue():
        if not TASKS[name.task].variant_of:
            assert name.alias in html, name.alias
    for task in TASKS:
        assert f"<code>{task}</code>" in html, task


def test_the_results_pages_show_the_committed_tables(site):
    html = page_text(site, "results/lite-suite")
    for row in (REPO / "results/lite/table.md").read_text().splitlines()[2:4]:
        assert row.split("|")[1].strip() in html
    assert "44.2 ± 6.4" in html and 'src="../lite/learning_curves.png"' in html


@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_every_python_block_of_the_docs_runs(index, tmp_path, built_data):
    shutil.copytree(built_data, tmp_path / "d4rl_lite_data")
    done = run_python_block(DOC_BLOCKS[index], tmp_path)
    assert done.returncode == 0, DOC_BLOCKS[index] + "\n" + done.stderr


@pytest.fixture(scope="module")
def built_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs_data") / "d4rl_lite_data"
    build_first_command_data(root)
    return root


def test_the_docs_have_the_examples_these_tests_run():
    assert len(DOC_BLOCKS) >= 3  # own algorithm, stitching, GPU
    assert any("@register" in b for b in DOC_BLOCKS)


def test_every_command_line_in_the_docs_parses():
    from d4rl_lite.cli import build_parser

    parser = build_parser()
    commands = [words for page in PAGES + STORIES for words in command_lines(page)]
    for words in commands:
        parser.parse_args(words)  # an unknown verb or flag exits here
    assert len(commands) >= 20


def test_every_suite_file_in_the_docs_is_a_valid_suite(tmp_path):
    from d4rl_lite.benchmark.suites import Suite

    suites = [b for page in PAGES for b in blocks("json", page) if '"algorithms"' in b]
    assert len(suites) >= 2
    for i, text in enumerate(suites):
        path = tmp_path / f"suite{i}.json"
        path.write_text(text)
        suite = Suite.load(path)  # refuses a malformed suite or an unknown setting, in one line
        assert suite.name == json.loads(text)["name"]


def environment_variables_read() -> set[str]:
    """Every variable the package reads or sets: os.environ.get/setdefault/[...], os.getenv, "X" in os.environ."""
    names = set()
    for path in (REPO / "d4rl_lite").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            key = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                owner = ast.unparse(node.func.value)
                if (owner == "os.environ" and node.func.attr in ("get", "setdefault", "pop")) or \
                        (owner == "os" and node.func.attr == "getenv"):
                    key = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                key = node.slice
            elif isinstance(node, ast.Compare) and any(ast.unparse(c) == "os.environ" for c in node.comparators):
                key = node.left
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


def test_every_environment_variable_the_package_reads_is_documented():
    page = (DOCS / "reference/environment.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", page, flags=re.M))
    read = environment_variables_read()
    assert {"D4RL_LITE_ZOO", "D4RL_LITE_RUNS", "MINARI_DATASETS_PATH"} <= read
    assert read - documented == set(), "read by the package, not documented"
    assert documented - read == set(), "documented, not read by the package"


TRACKER_WORDS = r"\b[Ii]ssues? \d+|\bthe issue\b"


def test_user_facing_text_does_not_speak_of_the_tracker():
    texts = [REPO / "README.md", REPO / "CHANGELOG.md", *PAGES, *STORIES]
    for path in texts:
        found = re.findall(TRACKER_WORDS, path.read_text())
        assert not found, f"{path.relative_to(REPO)}: {found}"


def test_suite_descriptions_and_help_do_not_speak_of_the_tracker():
    from d4rl_lite.cli import build_parser

    for path in sorted((REPO / "d4rl_lite/benchmark/suites").glob("*.json")):
        found = re.findall(TRACKER_WORDS, json.loads(path.read_text()).get("description", ""))
        assert not found, f"{path.relative_to(REPO)}: {found}"
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in verbs.choices.items():
        found = re.findall(TRACKER_WORDS, parser.format_help())
        assert not found, f"d4rl-lite {name} --help: {found}"
