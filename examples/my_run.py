"""The quick-start controller script: find two Example satellites, run them through a run.

SatelliteExample -g lab -n a -i 127.0.0.1
SatelliteExample -g lab -n b -i 127.0.0.1
python examples/my_run.py --group lab
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from controller import Controller

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", "-g", default="lab")
    parser.add_argument("--interface", "-i", default="127.0.0.1")
    parser.add_argument("--config", "-c", default=str(HERE / "run.toml"))
    parser.add_argument("--run-id", default="r1")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--satellites", nargs="+", default=["Example.a", "Example.b"])
    args = parser.parse_args()

    with Controller(args.group, interface=args.interface) as ctl:
        ctl.on_state_change(lambda name, old, new: print(f"  {name:<20} {old:>12} -> {new}"))
        ctl.await_satellites(args.satellites, timeout=20)
        print(f"found: {', '.join(sorted(ctl.satellites))}")
        ctl.initialize(args.config)
        ctl.await_state("INIT", timeout=30)
        ctl.launch()
        ctl.await_state("ORBIT", timeout=30)
        ctl.start(args.run_id)
        ctl.await_state("RUN", timeout=30)
        time.sleep(args.seconds)
        ctl.stop()
        ctl.await_state("ORBIT", timeout=30)
        ctl.land()
        ctl.await_state("INIT", timeout=30)
        for name, handle in sorted(ctl.satellites.items()):
            print(f"{name}: {handle.command('get_status').verb}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
