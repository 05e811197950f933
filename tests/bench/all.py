"""Every benchmark in one run (`make bench`): stack start, capture, cluster, lag.

The stack benchmark starts and stops stacks of its own; the others share one
benchmark stack in a temporary folder, started here and wiped at the end.
Each prints its figures and their ratio to the goal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from core.stack import Stack
from tests.bench.run import bench_settings

STACK_PORT_BASE = 23090  # below 32768: outside Linux's ephemeral ports
SHARED_PORT_BASE = 23490


def _run(title: str, *args: str, env: dict[str, str] | None = None) -> int:
    print(f"\n== {title}", flush=True)
    done = subprocess.run([sys.executable, "-m", *args], env=env)
    if done.returncode != 0:
        print(f"   ({title} exited with {done.returncode})")
    return done.returncode


def main() -> int:
    failures = _run(
        "stack: cold start and warm restart",
        "tests.bench.run",
        "--port-base",
        str(STACK_PORT_BASE),
    )
    failures += _run(
        "cluster view: 500 topics x 12 partitions", "tests.bench.cluster_view"
    )

    env = dict(os.environ, CDC_STUDIO_TEST_PORT_BASE=str(SHARED_PORT_BASE))
    with tempfile.TemporaryDirectory(prefix="cdc-studio-bench-") as folder:
        settings = bench_settings(Path(folder) / "stack", SHARED_PORT_BASE)
        stack = Stack(settings)
        print("\n== starting the shared benchmark stack", flush=True)
        status, _ = stack.up()
        try:
            failures += _run(
                "capture: H2 writes, relay throughput, commit-to-consumer latency",
                "tests.bench.capture",
                str(settings.data_path),
                env=env,
            )
            failures += _run(
                "consumers: lag sampling, live tail under load",
                "tests.bench.consumers",
                "--bootstrap",
                status.bootstrap_servers,
                "--seconds",
                "30",
                env=env,
            )
        finally:
            stack.down(wipe=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
