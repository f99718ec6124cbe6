"""Where a sweep's runs train: on this machine, N worker processes at a time, or as Ray tasks.

A backend takes the worker function (`groklab.sweep.execute`) and the jobs, and yields each job's result as it
ends. Both call the same function on the same absolute run directories, so run folders land identically; on a
Ray cluster those paths must be on a filesystem every node shares.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

from groklab.errors import UserError

Execute = Callable[[Any], dict]
Backend = Callable[[Execute, list], Iterator[dict]]


def get(backend: str, jobs: int, address: str | None, resources: Any) -> Backend:
    """The backend's runner; checks its requirements (Ray installed) before anything trains."""
    if backend == "local":
        if address:
            raise UserError("--address is for --backend ray; the local backend runs on this machine")
        return partial(local, n_parallel=jobs)
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise UserError("--backend ray needs Ray: pip install 'groklab[ray]'") from None
        if address:
            check_reachable(address)
        return partial(on_ray, ray=ray, address=address, resources=resources)
    raise UserError(f"--backend {backend!r} is not one of local, ray")


def check_reachable(address: str) -> None:
    """ray.init retries for many minutes where nothing listens: fail fast with one clear line instead."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():  # "auto" and other forms Ray resolves itself
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(
            f"nothing answers at Ray address {address} ({exc.strerror or exc}); start the cluster "
            "(`ray start --head`) or fix --address"
        ) from None


def local(execute: Execute, jobs: list, n_parallel: int) -> Iterator[dict]:
    """One job at a time in this process, or `n_parallel` worker processes (separate interpreters: no shared
    GIL). Workers are spawned, not forked: forking a process whose torch thread pool is running can hang."""
    if n_parallel == 1 or len(jobs) <= 1:
        for job in jobs:
            yield execute(job)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(n_parallel, len(jobs)), mp_context=context) as pool:
        futures = [pool.submit(execute, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            raise UserError(
                "a sweep worker process died (out of memory or killed); run the same sweep again to resume"
            ) from None


def on_ray(execute: Execute, jobs: list, ray: Any, address: str | None, resources: Any) -> Iterator[dict]:
    """Each job is a Ray task asking for `resources`; connects to `address`, or starts a local Ray instance
    (unless this process is already connected), and shuts down only what it started."""
    if not jobs:
        return
    started = not ray.is_initialized()
    if started:
        try:
            # "local": always a fresh instance, never a stale cluster that `ray start` left in /tmp/ray
            ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}") from None
    try:
        check_fits(ray.cluster_resources(), resources)
        task = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus)(execute)
        pending = {task.remote(job): job for job in jobs}
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done)
            try:
                yield ray.get(done)
            except ray.exceptions.RayError as exc:  # the worker died: report it like any failed run
                yield {"name": job.name, "action": job.action, "status": "failed", "error": str(exc).splitlines()[0]}
    finally:
        if started:
            ray.shutdown()


def check_fits(cluster: dict, resources: Any) -> None:
    """A request larger than the whole cluster makes Ray wait forever: refuse it instead."""
    for name, want in (("CPU", resources.cpus), ("GPU", resources.gpus)):
        have = cluster.get(name, 0)
        if want > have:
            raise UserError(
                f"each run asks for {want:g} {name}s ([resources] {name.lower()}s) but the Ray cluster has "
                f"{have:g}; lower it in the sweep file or add nodes"
            )
