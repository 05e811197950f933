"""Benchmarks, measured in one run: cold start and warm restart of the stack.

Run with `make bench`. Prints each sample, the medians, and the ratio of the
cold-start median to the 20 s goal (below 1.0 meets it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from core import jvm
from core.settings import H2Settings, KafkaSettings, Settings
from core.stack import Stack

COLD_START_GOAL_S = 20.0


def bench_settings(data_dir: Path, port_base: int) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        kafka=KafkaSettings(controller_port=port_base, base_port=port_base + 2),
        h2=H2Settings(port=port_base + 100),
    )


def timed_up(stack: Stack) -> float:
    started = time.perf_counter()
    _, reused = stack.up()
    elapsed = time.perf_counter() - started
    assert not reused, "the bench expected to start the stack, not reuse it"
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=23090)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cdc-bench-") as tmp:
        settings = bench_settings(Path(tmp), args.port_base)
        jvm.ensure_built(settings)  # building jars is set-up, not start-up
        stack = Stack(settings)
        cold: list[float] = []
        warm: list[float] = []
        try:
            for run in range(args.runs):
                cold.append(timed_up(stack))
                print(f"cold start {run + 1}: {cold[-1]:.2f} s", flush=True)
                stack.down()
                warm.append(timed_up(stack))
                print(f"warm restart {run + 1}: {warm[-1]:.2f} s", flush=True)
                stack.down(wipe=True)
        finally:
            stack.down(wipe=stack.state_file.exists())

    cold_median = statistics.median(cold)
    warm_median = statistics.median(warm)
    print()
    print("stack (controller, 3 brokers, H2) until ready")
    print(f"  cold start median:   {cold_median:.2f} s over {len(cold)} runs")
    print(f"  warm restart median: {warm_median:.2f} s over {len(warm)} runs")
    print(
        f"  cold / goal ({COLD_START_GOAL_S:.0f} s): "
        f"{cold_median / COLD_START_GOAL_S:.2f}"
    )
    print(f"  warm / cold:         {warm_median / cold_median:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
