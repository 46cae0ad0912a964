"""The kernels' tuned constants, each with what it trades and the measurement that chose it.

None of them changes a result bit: they decide how CPU work is cut into spans run side by side
(:func:`hts_mlff.engine.kernels.spans`) and which list builder a cell gets. On a GPU one launch
covers every atom, so only the builder choices apply there.

Machine: the project's 2-core development VMs (``Intel(R) Xeon(R) Processor``, 2 vCPUs, 24 GiB,
no GPU; Python 3.11, torch 2.13 CPU, warp-lang 1.19). Benchmark: ``benchmarks/engine_vs_lammps.py``
(LJ argon, Langevin, 64 × 256 and 1 × 4,000 atoms, one and two threads, fresh processes
interleaved in rounds) unless a line names another. Retune on a new CPU type by rerunning it
with a constant changed (tests patch them freely: ``tests/engine/test_kernels.py`` checks that
no value changes a bit).

==========================  =======  ========================================================
constant                    value    what chose it
==========================  =======  ========================================================
MIN_SPAN                    1,024    pair kernel (a few hundred operations per atom): a span
                                     handed to another thread costs ~20–50 µs, worth it from
                                     ~1,000 atoms (1 × 4,000 on two threads: 0.99× → 1.5× wall)
MIN_BUILD_SPAN              256      list builders (thousands of operations per atom)
MIN_THERMOSTAT_SPAN         8,192    fused Langevin step (three Gaussian draws per atom, ~60 ns)
MIN_LIGHT_SPAN              65,536   updates and per-system sums (~5 ns per atom): a Langevin
                                     kick of 16,384 atoms took 0.24 ms on one thread, 0.49 ms
                                     split over two
CHUNK_ATOMS, MAX_CHUNKS     1,024, 8 half rows: a system of ≥ 2 × CHUNK_ATOMS atoms is cut into
                                     a power of two of chunks, each with its own copy of the
                                     arrays (~25 µs per 4,000 atoms a chunk); 2 chunks of the
                                     4,000-atom system split as evenly over two threads as 8
MIN_IMAGE_MAX_ATOMS         1,024    all-pairs minimum-image builder (n² per rebuild) against the
                                     cell list: one LJ-argon FCC cube (r_c 8.5 Å, skin 1 Å), one
                                     thread, min of 7 builds, cell list / minimum image =
                                     1.63 (500 atoms), 1.42 (864), 1.01 (1,372), 0.78 (2,048),
                                     0.52 (2,916); it was 2,048, never measured
BIN_SPLIT                   1        cell-list bins of the full list range: 5 % faster than 1/2
                                     or 1/3 (4,000-atom cube, 10,000-atom 5 × 5 × 100 rod, one
                                     thread, min of 7)
==========================  =======  ========================================================
"""

#: Fewest atoms per span of the pair kernels.
MIN_SPAN = 1024
#: Fewest atoms per span of the list builders.
MIN_BUILD_SPAN = 256
#: Fewest atoms per span of the thermostat step.
MIN_THERMOSTAT_SPAN = 8192
#: Fewest atoms per span of the per-atom updates and per-system sums.
MIN_LIGHT_SPAN = 65536
#: Fewest atoms per chunk of a half-row system, and most chunks.
CHUNK_ATOMS = 1024
MAX_CHUNKS = 8
#: Largest system built by the all-pairs minimum-image kernel.
MIN_IMAGE_MAX_ATOMS = 1024
#: Cell-list bins are at least the list range / BIN_SPLIT wide.
BIN_SPLIT = 1
