"""One executor for parallel runs, under ``eirnn-fast experiment`` (suites) and ``eirnn-fast explore``.

Engines: ``"serial"`` (in this process, one task after another), ``"local"`` (a process pool of
``workers``, kept across :meth:`Executor.run` calls) and ``"ray"`` (one Ray task per item, options
per task, optional cluster ``address``).

Failure handling, the same on every engine:

- a task that raises is a finished, failed task: :class:`Outcome` ``ok=False`` with
  ``error = "Type: message"`` (and ``traceback``); the other tasks go on;
- a worker process that dies (killed, out of memory, ``os._exit``) raises :class:`WorkerDied` once
  the tasks that finished before it were reported: nothing is lost that finished, and the callers'
  resume rules (finished runs kept, the rest re-run) apply when the same command runs again.

Resume is the callers' (they pass only the tasks not finished); :meth:`Executor.run` yields
``(task, outcome)`` as each task finishes, so a caller records every result at once (atomically).
"""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

ENGINES = ("serial", "local", "ray")


class WorkerDied(RuntimeError):
    """A worker process died with tasks in flight (finished ones were reported before)."""


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: str = ""  # "Type: message" of a failed task
    traceback: str = ""


def _failed(exc: BaseException) -> Outcome:
    return Outcome(
        False,
        error=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=4)),
    )


def _died(what: str, exc: BaseException, n_lost: int) -> WorkerDied:
    return WorkerDied(
        f"a worker process died ({what}: {exc}) with {n_lost} task(s) in flight; finished work is saved, "
        "run the same command again to resume"
    )


class Executor:
    """Run ``fn(task)`` for many tasks on one engine (see the module docstring).

    ``workers``: parallel tasks of the local pool. ``mp_context``: its start method (None: the
    platform's; ``"spawn"`` for workers that must not inherit the parent's threads or CUDA state).
    ``ray_address``: ``ray.init``'s address (None: a local Ray); ``ray_options(task)``: options of each
    task's ``.remote`` (``num_cpus``, ``num_gpus``); ``ray_log_to_driver``: show the workers' output."""

    def __init__(
        self,
        engine: str = "local",
        workers: int = 1,
        *,
        mp_context: Optional[str] = None,
        ray_address: Optional[str] = None,
        ray_options: Optional[Callable[[Any], Dict[str, Any]]] = None,
        ray_log_to_driver: bool = False,
    ):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.engine, self.workers = engine, workers
        self.mp_context = mp_context
        self.ray_address, self.ray_options, self.ray_log_to_driver = ray_address, ray_options, ray_log_to_driver
        self._pool: Optional[ProcessPoolExecutor] = None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the local pool down (tasks not started are cancelled; running ones are not waited for)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Tuple[Any, Outcome]]:
        """Yield ``(task, outcome)`` for every task as it finishes (serial: in order)."""
        tasks = list(tasks)
        if not tasks:
            return
        if self.engine == "serial":
            for task in tasks:
                try:
                    outcome = Outcome(True, fn(task))
                except Exception as exc:  # an ordinary failure: recorded, the next task runs
                    outcome = _failed(exc)
                yield task, outcome
        elif self.engine == "local":
            yield from self._run_local(fn, tasks)
        else:
            yield from self._run_ray(fn, tasks)

    def _run_local(self, fn, tasks):
        if self._pool is None:
            ctx = multiprocessing.get_context(self.mp_context) if self.mp_context else None
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        futures = {self._pool.submit(fn, task): task for task in tasks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            died, n_broken = None, 0
            for fut in done:
                try:
                    outcome = Outcome(True, fut.result())
                except BrokenProcessPool as exc:
                    died, n_broken = exc, n_broken + 1
                    continue
                except Exception as exc:
                    outcome = _failed(exc)
                yield futures[fut], outcome
            if died is not None:
                self.close()
                raise _died("process pool", died, len(pending) + n_broken) from died

    def _run_ray(self, fn, tasks):
        try:
            import ray  # optional dependency (the [ray] extra): imported only when asked for
        except ImportError:
            raise RuntimeError("engine 'ray' needs Ray: pip install 'eirnn_fast[ray]' (or use engine local)") from None
        if not ray.is_initialized():
            ray.init(address=self.ray_address, ignore_reinit_error=True, log_to_driver=self.ray_log_to_driver)
        remote = ray.remote(fn)
        refs = {}
        for task in tasks:
            opts = self.ray_options(task) if self.ray_options is not None else {}
            refs[(remote.options(**opts) if opts else remote).remote(task)] = task
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            ref = done[0]
            try:
                outcome = Outcome(True, ray.get(ref))
            except ray.exceptions.RayTaskError as exc:  # the task raised: an ordinary failure
                cause = getattr(exc, "cause", None)
                outcome = _failed(cause if isinstance(cause, BaseException) else exc)
            except ray.exceptions.RayError as exc:  # the worker died or the cluster lost it
                raise _died("ray", exc, len(pending) + 1) from exc
            yield refs[ref], outcome
