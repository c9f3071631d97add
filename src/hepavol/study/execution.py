"""Run independent tasks on this machine (a process pool) or on a Dask distributed cluster.

:func:`run_tasks` keeps at most ``2 × workers`` tasks in flight and asks ``claim(task)`` just before submitting
each one, so that two processes working on the same study share the work instead of both doing all of it.
Results come back to the calling process, which alone writes to the database; workers only read the image files
(on a cluster, every worker must see the same paths).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

from hepavol.errors import InputError

__all__ = ["InlineExecutor", "open_executor", "run_tasks", "worker_name"]

T = TypeVar("T")
R = TypeVar("R")


def worker_name() -> str:
    """``host:pid`` of the process running a task (recorded with each result)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _end_with_run(run_pid: int) -> None:
    """End this worker as soon as the ``study run`` process ``run_pid`` is gone, even after a ``kill -9``.

    Workers are children of multiprocessing's forkserver, and each keeps the forkserver alive (it holds the pipe
    whose end-of-file tells the forkserver to exit), so neither ends by itself when the run is killed. A daemon
    thread waits on a pidfd of the run (Linux; elsewhere it polls every second) and ends the worker at once; the
    forkserver then sees its last client go and exits, and the resource tracker its last pipe close.
    """

    def wait_pidfd(fd: int) -> None:
        select.select([fd], [], [])
        os._exit(1)

    def poll() -> None:
        while True:
            try:
                os.kill(run_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            time.sleep(1.0)

    try:
        fd = os.pidfd_open(run_pid)
    except ProcessLookupError:
        os._exit(1)
    except (OSError, AttributeError):
        threading.Thread(target=poll, name="hepavol-run-watch", daemon=True).start()
        return
    threading.Thread(target=wait_pidfd, args=(fd,), name="hepavol-run-watch", daemon=True).start()


def _init_worker(threads: int, run_pid: int) -> None:
    """Worker initializer: end with the run (:func:`_end_with_run`); share the cores between workers (ITK
    registration and numpy would each use all)."""
    _end_with_run(run_pid)
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
    ):
        os.environ[name] = str(threads)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


class InlineExecutor(Executor):
    """Runs each task in the calling process when it is submitted (``--workers 1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


@contextmanager
def open_executor(*, workers: int, scheduler: str | None) -> Iterator[tuple[Executor, int]]:
    """An executor and its number of parallel slots: Dask if ``scheduler`` is given, else processes here.

    Raises
    ------
    InputError
        ``workers`` < 1, or the Dask scheduler cannot be reached.
    """
    if workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}.")
    if scheduler:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - a dependency of hepavol
            raise InputError("--scheduler needs dask.distributed: pip install 'dask[distributed]'.") from None
        try:
            client = Client(scheduler, timeout="15s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at '{scheduler}': {exc}. Start one with 'dask scheduler' and "
                "workers with 'dask worker ADDRESS' (in an environment with hepavol installed), then give the "
                "scheduler's address, e.g. tcp://10.0.0.5:8786."
            ) from None
        try:
            slots = max(sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()), 1)
            yield client.get_executor(pure=False), slots
        finally:
            client.close()
    elif workers == 1:
        yield InlineExecutor(), 1
    else:
        context = multiprocessing.get_context("forkserver")
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads, os.getpid())
        )
        try:
            yield pool, workers
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def run_tasks(
    executor: Executor,
    slots: int,
    tasks: Sequence[T],
    fn: Callable[[T], R],
    *,
    claim: Callable[[T], bool],
    on_done: Callable[[T, R], None],
    on_error: Callable[[T, BaseException], None],
    on_idle: Callable[[Sequence[T]], None] | None = None,
    idle_seconds: float = 30.0,
) -> None:
    """Submit ``fn(task)`` for each task that ``claim`` accepts; report each outcome as it arrives.

    ``on_idle(tasks_in_flight)`` is called at least every ``idle_seconds`` while tasks run (to renew leases).
    ``on_done``/``on_error`` run in this process, one at a time.
    """
    pending = deque(tasks)
    inflight: dict[Future[R], T] = {}
    capacity = max(2 * slots, 1)
    last_idle = time.monotonic()
    try:
        while pending or inflight:
            while pending and len(inflight) < capacity:
                task = pending.popleft()
                if not claim(task):
                    continue
                try:
                    inflight[executor.submit(fn, task)] = task
                except BrokenProcessPool as exc:
                    on_error(task, exc)
            if not inflight:
                continue
            done, _ = wait(list(inflight), timeout=idle_seconds, return_when=FIRST_COMPLETED)
            for future in done:
                task = inflight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    on_error(task, exc)
                else:
                    on_done(task, result)
            if on_idle is not None and time.monotonic() - last_idle >= idle_seconds:
                on_idle(list(inflight.values()))
                last_idle = time.monotonic()
    finally:
        for future in inflight:
            future.cancel()
