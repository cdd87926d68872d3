"""Start or join Ray: an existing cluster when an address is given (or `RAY_ADDRESS` is set), else an embedded
local Ray on this machine (CPU-only works)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("ray_cluster.cluster")
NAMESPACE = "show-studio"
START_ATTEMPTS = 2  # an embedded Ray whose start fails is torn down and started once more
_record = None  # the ProcessRecord of the embedded Ray this process started (Ray itself is per process)
_embedded = False  # whether this process started the Ray it is connected to


def connect(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    namespace: str = NAMESPACE,
    dashboard: bool = True,
    record: str | Path | None = None,
):
    """Connect this process to Ray and return the `ray.init` context.

    Args:
        address: a cluster address (`ray://head:10001`, `head:6379`, or `auto`); None reads `RAY_ADDRESS`, and
            when that is unset too, starts an embedded local Ray.
        num_cpus: CPUs of the embedded Ray (None: all of this machine's); ignored when joining a cluster,
            whose resources are the cluster's.
        namespace: the Ray namespace of the named actors (pools created in one namespace are found by name
            from another process in the same namespace).
        dashboard: start the dashboard with the embedded Ray (http://127.0.0.1:8265 by default).
        record: a file that lists the embedded Ray's processes while this process runs
            (`ray_cluster.leftovers`); before starting, what a killed previous owner of that file left behind is
            stopped. Only the processes listed there are touched, never another Ray on the machine.

    Returns:
        Ray's context (`.dashboard_url`, `.address_info`). Calling it again in a connected process returns the
        current context and changes nothing.
    """
    import ray

    global _record, _embedded
    _no_auto_init()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        return ray.init(address=address, namespace=namespace, ignore_reinit_error=True)
    if record is not None and not ray.is_initialized():
        from ray_cluster.leftovers import stop_leftovers

        stop_leftovers(Path(record))
    if ray.is_initialized():
        context = ray.init(namespace=namespace, ignore_reinit_error=True)
    else:
        context = _start_embedded(num_cpus=num_cpus, namespace=namespace, include_dashboard=dashboard)
        _embedded = True
    if record is not None and _record is None:
        from ray_cluster.leftovers import ProcessRecord

        _record = ProcessRecord(Path(record)).start()
    return context


def _start_embedded(**init_kwargs):
    """Start a local Ray, once more after a failed start: one of the head's processes can die as it is forked
    (seen as the dashboard exiting with SIGABRT before it wrote a line, when the driver forks it while its own
    gRPC threads are busy), and a second start from a clean state goes through. The processes a failed start
    left running (its GCS server, which `ray.shutdown` does not know of: every process that appeared below this
    one while it ran) are stopped first. A start that fails twice raises the last error."""
    import ray

    from ray_cluster.leftovers import descendants, stop

    for attempt in range(1, START_ATTEMPTS + 1):
        before = {(p.pid, p.start) for p in descendants(os.getpid())}  # not the name: Ray's retitle themselves
        try:
            return ray.init(ignore_reinit_error=True, **init_kwargs)
        except Exception as error:
            ray.shutdown()
            stop([p for p in descendants(os.getpid()) if (p.pid, p.start) not in before])
            if attempt == START_ATTEMPTS:
                raise
            log.warning("starting the embedded Ray failed (%s: %s); starting it again", type(error).__name__, error)
    raise AssertionError("unreachable")


def _no_auto_init() -> None:
    """Switch off Ray's auto-init in this process: `connect` is the one way in. Otherwise a Ray call from a thread
    left over from an earlier connection (a Serve handle's, after `shutdown`) starts a second local Ray at the
    moment `connect` starts one, and the two share this driver until one of them dies (seen as a test module's
    Ray losing its GCS a second after it started)."""
    import contextlib

    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    with contextlib.suppress(ImportError, AttributeError):
        from ray._private import auto_init_hook  # read once at import; no public switch after that

        auto_init_hook.enable_auto_connect = False


def shutdown() -> None:
    """Disconnect from Ray (and stop the embedded Ray when this process started it, with its Serve applications
    and this process's handles to them, so a later `connect()` starts clean)."""
    import sys

    import ray

    global _record, _embedded
    if ray.is_initialized():
        if _embedded and "ray.serve" in sys.modules:
            from ray import serve

            serve.shutdown()
        if "ray_cluster.pools" in sys.modules:  # its stream readers return once Serve is gone; Ray outlives them
            sys.modules["ray_cluster.pools"].join_readers()
        ray.shutdown()
    _embedded = False
    if _record is not None:
        _record.close()
        _record = None
