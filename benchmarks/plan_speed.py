"""Time to validate and expand a 10⁵-task campaign (100 temperatures × 1000 seeds).

python benchmarks/plan_speed.py
"""

from __future__ import annotations

import time

from hts_mlff.spec import parse_campaign
from hts_mlff.tasks import expand

CAMPAIGN = """\
name: plan-speed
store: plan-speed.zarr
systems:
  ar: {kind: fcc, element: Ar, lattice_A: 5.3, repeat: [4, 4, 4]}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
protocol: {timestep_fs: 10.78, production_steps: 1000}
sweep:
  temperature_K: %s
  seed: %s
"""


def main() -> None:
    text = CAMPAIGN % (list(range(1, 101)), list(range(1000)))
    t0 = time.perf_counter()
    spec, _ = parse_campaign(text, file="plan-speed.yaml")
    t1 = time.perf_counter()
    plan = expand(spec, base_dir=None)
    t2 = time.perf_counter()
    print(f"{len(plan.tasks):,} tasks in {len(plan.packs):,} packs")
    print(f"validate {t1 - t0:.3f} s, expand {t2 - t1:.3f} s, total {t2 - t0:.3f} s")


if __name__ == "__main__":
    main()
