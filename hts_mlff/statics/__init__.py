"""Zero-temperature calculations ("statics"), beside campaigns.

T = 0 lattices at a pressure and Debye frequencies (:mod:`.lattice`), vacancy-hop minimum-energy
paths (:mod:`.vacancy_hop`) and barrier sweeps over force fields × pressures
(:mod:`.barrier_sweep`). They share the campaigns' force-field specs and the runtime layer
(:mod:`hts_mlff.runtime`: device, force-field cache, lattices), and each sweep is one YAML
config with located errors whose points are saved one by one in a resumable result store
(:mod:`.results`). They run in-process: tens of points of seconds each need no cluster.
"""
