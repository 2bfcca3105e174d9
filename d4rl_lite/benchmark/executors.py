"""Where a suite's jobs run: a local process pool (default) or Ray tasks, with progress lines.

Ctrl-C stops a local bench within seconds, whether the signal reaches the main process alone
(``kill -INT``) or its whole process group (a terminal): queued jobs never start, and a running
job stops as ``train`` does on Ctrl-C, between two updates (its last checkpoint, written
atomically, stays valid; the next bench resumes from it). Ray stops its tasks itself when the
driver goes (``ray.shutdown`` of a local Ray; an owner's tasks on a cluster).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from d4rl_lite.benchmark.progress import JobProgress, score_text

POLL_S = 2.0  # how often the main process reads the running jobs' logs for progress
STOP_GRACE_S = 10.0  # a pool worker still winding down this long after Ctrl-C exits without finishing

# run_group's arguments: (suite dict, algorithm, dataset, seeds, results dir, dataset root, device, wandb)
Job = tuple


class _Board:
    """The suite's counts, and its lines: each job's progress (JobProgress) and its end."""

    def __init__(self, jobs: list[Job], watch: list[JobProgress], workers: int, log: Callable[[str], None]):
        self.jobs, self.watch, self.workers, self.log = jobs, dict(enumerate(watch)), workers, log
        self.total = sum(len(job[3]) for job in jobs)
        self.done = self.failed = 0

    def poll(self) -> None:
        for progress in self.watch.values():
            for line in progress.lines():
                self.log(line)

    def ended(self, index: int, records: list[dict[str, Any]] | None = None, error: BaseException | None = None) -> None:
        progress = self.watch.pop(index)
        for line in progress.lines():  # evaluations since the last look come before the job's end
            self.log(line)
        seeds = self.jobs[index][3]
        if error is None:
            lost = sum("diverged" in r for r in records or [])
            score = score_text([r["final"] for r in records or [] if r.get("final")])
            last = f"finished {progress.name}" + (f" ({lost} diverged)" if lost else "") + (f": {score}" if score else "")
        else:
            lost, last = len(seeds), f"FAILED {progress.name}: {type(error).__name__}: {error}"
        self.done, self.failed = self.done + len(seeds) - lost, self.failed + lost
        left = self.total - self.done - self.failed
        running = min(self.workers * len(seeds), left)
        self.log(f"[{self.done} done / {running} running / {max(0, left - running)} left] {last}")


def run_local(job_fn: Callable[..., list[dict[str, Any]]], jobs: list[Job], watch: list[JobProgress], workers: int,
              _address: str | None, log: Callable[[str], None]) -> tuple[int, int]:
    """``job_fn(*job)`` for every job in a pool of ``workers`` processes; returns (runs done, runs failed)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    board = _Board(jobs, watch, workers, log)
    context = mp.get_context("spawn")
    stop = context.Event()
    pool = None
    try:
        with _sigint_blocked():  # the workers start with it blocked (_start_worker)
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                                       initargs=(os.getpid(), stop))
            futures = {pool.submit(_pool_job, job_fn, *job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            ended, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            board.poll()
            for future in ended:
                try:
                    records = future.result()
                except Exception as e:  # noqa: BLE001 - one failed job must not stop the suite
                    board.ended(futures[future], error=e)
                else:
                    board.ended(futures[future], records)
    except BaseException:  # Ctrl-C (a job's own KeyboardInterrupt included), or a fault here
        if pool is not None:
            stop.set()  # queued jobs return at once; running ones are interrupted (_exit_when_orphaned)
            pool.shutdown(wait=True, cancel_futures=True)  # bounded: a worker exits STOP_GRACE_S after the stop
        raise
    pool.shutdown(wait=True)
    return board.done, board.failed


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread: processes started meanwhile inherit the mask, and a Ctrl-C to
    this process is handled by another of its threads or when the block ends, never lost."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_suite_stopped: Any = None  # in a pool worker: the main process's stop event


def _start_worker(parent_pid: int, stop: Any) -> None:
    """A pool worker's set-up. Between jobs it ignores SIGINT (a Ctrl-C to the process group, or one
    while it was starting up, has no job to stop and must not kill it mid-queue with a traceback);
    the main process's ``stop`` reaches the running job (_pool_job)."""
    global _suite_stopped
    _suite_stopped = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since its start (_sigint_blocked)
    _exit_when_orphaned(parent_pid, stop=stop)


def _pool_job(job_fn: Callable[..., list[dict[str, Any]]], *job: Any) -> list[dict[str, Any]] | None:
    """One job in a pool worker: SIGINT stops it as Ctrl-C stops ``train``; a job reached after
    the suite was stopped returns None without starting."""
    signal.signal(signal.SIGINT, _interrupt_once)
    try:
        if _suite_stopped.is_set():  # checked after the handler is in place: no stop is missed
            return None
        return job_fn(*job)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt_once(_signum: int, _frame: Any) -> None:
    # A second SIGINT (the group's and the stop's, or Ctrl-C pressed twice) must not cut the
    # job's clean-up short (log closed, W&B run finished, locks released).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _exit_when_orphaned(parent_pid: int, period_s: float = 1.0, stop: Any = None,
                        grace_s: float = STOP_GRACE_S) -> None:
    """Exit this worker as soon as ``parent_pid`` is gone (killed with -9, say) instead of training
    on, unseen, for minutes. ``stop``: an event the parent sets to stop the suite; then the running
    job is interrupted, and the worker exits if it has not wound down within ``grace_s``."""
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            if stop is None:
                time.sleep(period_s)
            elif stop.wait(period_s):
                os.kill(os.getpid(), signal.SIGINT)
                deadline = time.monotonic() + grace_s
                while os.getppid() == parent_pid and time.monotonic() < deadline:
                    time.sleep(min(period_s, 0.2))
                break
        os._exit(3)  # the run's checkpoint and log are consistent on disk: a later bench resumes it

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()


def run_ray(job_fn: Callable[..., list[dict[str, Any]]], jobs: list[Job], watch: list[JobProgress], workers: int,
            address: str | None, log: Callable[[str], None]) -> tuple[int, int]:
    """``job_fn(*job)`` for every job as a Ray task (one CPU each); returns (runs done, runs failed)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(job_fn)
    board = _Board(jobs, watch, workers, log)
    pending = {remote.remote(*job): i for i, job in enumerate(jobs)}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            board.poll()
            for ref in ready:
                index = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except Exception as e:  # noqa: BLE001
                    board.ended(index, error=e)
                else:
                    board.ended(index, records)
    finally:
        if started_here:
            ray.shutdown()
    return board.done, board.failed
