"""Progress inside a running bench job, read from its runs' ``log.jsonl``.

Every run already appends a line at each log interval (with ``time/updates_per_s``) and at each
evaluation; the main process reads what was appended since its last look, so training pays
nothing for progress and the same code serves the local pool and Ray (whose results directory is
shared). Output is plain lines, one per job at each evaluation and at least every ``QUIET_S``
while it trains, never a redrawn bar: readable in a terminal, a log file and CI alike.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from d4rl_lite.records import population_name

# A job that trains without a new evaluation still gets a line this often (updates, updates/s).
QUIET_S = 30.0


def job_name(algo: str, dataset: str, seeds: list[int]) -> str:
    return population_name(algo, dataset, seeds)


def score_text(evaluations: list[dict[str, Any]]) -> str:
    """'score 61.2' (normalized, the mean over a population's members; raw return where a task has
    no reference scores) and the success rate where the task has one; '' without an evaluation."""
    if not evaluations:
        return ""
    key, label = (("eval/normalized_score", "score") if all("eval/normalized_score" in e for e in evaluations)
                  else ("eval/return_mean", "return"))
    values = [e[key] for e in evaluations if isinstance(e.get(key), (int, float))]
    text = f"{label} {sum(values) / len(values):.1f}" if values else ""
    successes = [e["eval/success_rate"] for e in evaluations if isinstance(e.get("eval/success_rate"), (int, float))]
    return text + (f", success {100 * sum(successes) / len(successes):.0f}%" if successes else "")


class _RunLog:
    """The rows one run's log gains from now on. A log rewritten in place (a resumed run drops the
    rows after its checkpoint, then logs them again) is read anew; rows at steps already seen are
    not progress and are skipped."""

    def __init__(self, path: Path):
        self.path = path
        self.inode, self.offset = None, 0
        self.seen = {"updates": -1, "evaluation": -1}  # the last step of each kind of row read
        self.updates: dict[str, Any] | None = None  # the newest training row
        self.evaluations: list[dict[str, Any]] = []  # evaluation rows not yet shown
        self.read()
        self.updates, self.evaluations = None, []  # what earlier sessions logged is not this session's progress

    def read(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, even on a planted FIFO
        except OSError:
            return  # not started yet
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):  # nothing to follow in a FIFO or device
                return
            if st.st_ino != self.inode or st.st_size < self.offset:
                self.inode, self.offset = st.st_ino, 0
            f.seek(self.offset)
            chunk = f.read(max(0, st.st_size - self.offset))
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read at the next look
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a damaged line is the run's own business (its resume reports it)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                continue
            kind = "evaluation" if "eval/return_mean" in row else "updates" if "time/updates_per_s" in row else None
            if kind and row["step"] > self.seen[kind]:
                self.seen[kind] = row["step"]
                if kind == "updates":
                    self.updates = row
                else:
                    self.evaluations.append(row)


class JobProgress:
    """What a job's runs logged since the last look, as lines to print: one per evaluation before
    the last (the last is the job's 'finished' line), and one after ``quiet_s`` of training
    without an evaluation."""

    def __init__(self, name: str, run_dirs: list[Path], total_steps: int, quiet_s: float = QUIET_S,
                 unit: str = "updates", then: JobProgress | None = None):
        self.name, self.total, self.quiet_s, self.unit = name, total_steps, quiet_s, unit
        self.runs = [_RunLog(Path(d) / "log.jsonl") for d in run_dirs]
        self.shown_step, self.shown_at, self.score = -1, time.monotonic(), ""
        # Evaluations are shown by their own step: an evaluation takes long enough for a quiet line
        # (at its step's updates) to come first, which must not hide its score.
        self.shown_eval, self.pending = -1, {}  # pending: step -> the members' evaluation rows so far
        self.then = then  # the job's next phase (a suite's online fine-tuning of the same seeds)

    def lines(self) -> list[str]:
        return self._own_lines() + (self.then.lines() if self.then is not None else [])

    def _own_lines(self) -> list[str]:
        for run in self.runs:
            run.read()
            for row in run.evaluations:  # a population's members evaluate at the same steps
                if self.shown_eval < row["step"] < self.total:
                    self.pending.setdefault(row["step"], []).append(row)
            run.evaluations = []
        updates = [r.updates for r in self.runs if r.updates]
        speed = updates[-1].get("time/updates_per_s") if updates else None
        speed_text = f", {speed:,.0f} upd/s" if isinstance(speed, (int, float)) else ""
        step = max((u["step"] for u in updates), default=-1)
        out = []
        for at in sorted(self.pending):
            # complete once every member logged it, or training went past it (a diverged member never will)
            if len(self.pending[at]) < len(self.runs) and step <= at:
                break
            score = score_text(self.pending.pop(at))
            self.score, self.shown_eval = (f", {score} at {at:,}" if score else ""), at
            out.append(self._line(max(at, self.shown_step), speed_text))
        if not out and self.shown_step < step < self.total and time.monotonic() - self.shown_at >= self.quiet_s:
            out.append(self._line(step, speed_text))
        return out

    def _line(self, step: int, speed_text: str) -> str:
        self.shown_step, self.shown_at = step, time.monotonic()
        return f"  {self.name}: {step:,}/{self.total:,} {self.unit}{speed_text}{self.score}"
