r"""The seeds' graph neural network force field (Li et al. 2022; transferability paper §2.2).

Atoms are nodes, pairs within ``cutoff_A`` are edges. With :math:`h` features per node
and edge and :math:`n` message-passing layers:

.. math::

    v_i^{(0)} = e^N(s_i), \qquad e_{ij}^{(0)} = e^E(\mathrm{RBF}(d_{ij})), \qquad
    e_{ij}^{(l)} = A^{(l)}(e_{ij}^{(0)})

    m_{j\to i}^{(l)} = \Phi^{(l)}\big(v_j^{(l-1)} + e_{ij}^{(l-1)} + v_i^{(l-1)}\big) \odot v_j^{(l-1)}\, f_c(d_{ij})

    v_i^{(l)} = \Theta^{(l)}\Big(v_i^{(l-1)} + \tfrac{1}{k}\textstyle\sum_{j} m_{j\to i}^{(l)}\Big) + v_i^{(l-1)}

Every MLP is Linear–GELU–Linear. :math:`f_c(d) = \tfrac12[\cos(\pi d / r_c) + 1]` takes each
message smoothly to zero at the cutoff, and the constant :math:`k` (``aggregation_norm``)
keeps the summed message of order one; both are fixed, not learned.

Two decoders, chosen by ``conservative``:

* **direct** (the seeds' force predictor): a scalar per pair,
  :math:`w_{ij} = D(v_i^{(n)} + v_j^{(n)} + e_{ij}^{(n)})\,f_c(d_{ij})`, and
  :math:`\mathbf F_i = s \sum_j w_{ij}\,\hat{\mathbf q}_{ij}` with :math:`\hat{\mathbf q}_{ij}`
  the unit vector from i to j. The direction enters only here, so forces rotate with the
  structure exactly; :math:`w_{ij} = w_{ji}`, so the net force is zero. Forces are not the
  gradient of anything: the finite-difference Hessian is not symmetric (seeds §3.4).
  The seeds feed :math:`\hat{\mathbf q}_{ij}` to the edge encoder instead, which breaks
  rotation equivariance unless it is learned; see ``docs/forcefields.md``.
* **conservative**: :math:`E = s \sum_i U(v_i^{(n)})`, :math:`\mathbf F = -\nabla E` by
  autograd and the stress from the virial,
  :math:`\sigma = \frac1V \sum_{\text{pairs}} \mathbf d_{ij} \otimes \partial E/\partial \mathbf d_{ij}`.

:math:`s` (``force_scale_eV_per_A``) is the standard deviation of the training forces: the
network works on normalised forces, as in the seeds' training. The direct model has no
energy; it reports zeros (and a zero stress).

Every edge quantity is symmetric in (i, j), so each pair is evaluated once from the
engine's half neighbour list and scattered to both atoms.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hts_mlff.engine.forcefield import ForceField, ForceOutput, weights_digest
from hts_mlff.engine.neighbors import NeighborList, pairs_for
from hts_mlff.engine.state import BatchState, sum_per_system


@dataclass(frozen=True)
class GNNConfig:
    """Architecture of the GNN force field (all of it goes into the checkpoint)."""

    species: tuple[int, ...] = (18,)
    hidden: int = 128
    n_layers: int = 4
    cutoff_A: float = 7.5
    n_rbf: int = 32
    rbf_width_A: float = 0.25
    aggregation_norm: float = 32.0
    conservative: bool = False
    force_scale_eV_per_A: float = 1.0

    def __post_init__(self) -> None:
        if not self.species:
            raise ValueError("species must list at least one atomic number")
        if self.hidden < 1 or self.n_layers < 1 or self.n_rbf < 1:
            raise ValueError("hidden, n_layers and n_rbf must be positive")
        if self.cutoff_A <= 0 or self.rbf_width_A <= 0 or self.force_scale_eV_per_A <= 0:
            raise ValueError("cutoff_A, rbf_width_A and force_scale_eV_per_A must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GNNConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown GNN config keys: {sorted(unknown)}")
        values = dict(data)
        if "species" in values:
            values["species"] = tuple(int(z) for z in values["species"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["species"] = list(self.species)
        return out


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    """Linear–GELU–Linear."""
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_out))


def cosine_cutoff(d: torch.Tensor, cutoff_A: float) -> torch.Tensor:
    """½[cos(π d / r_c) + 1] for d < r_c, else 0."""
    return torch.where(d < cutoff_A, 0.5 * (torch.cos(d * (math.pi / cutoff_A)) + 1.0), torch.zeros_like(d))


class GNNModule(nn.Module):
    """The network itself: graph in, per-pair weights (direct) or per-atom energies out.

    Inputs of :meth:`forward`:
        species_index: (n_atoms,) int64 row of ``config.species``.
        pair_i, pair_j: (n_pairs,) int64, a half list (each pair once), d < cutoff.
        distance_A: (n_pairs,) Å.
    Returns (n_pairs,) pair weights w_ij (direct; normalised units) or (n_atoms,) atomic
    energies U_i (conservative; normalised units).
    """

    def __init__(self, config: GNNConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.node_encoder = mlp(len(config.species), h, h)
        self.edge_encoder = mlp(config.n_rbf, h, h)
        self.edge_layers = nn.ModuleList(mlp(h, h, h) for _ in range(config.n_layers))  # A^(l)
        self.message = nn.ModuleList(mlp(h, h, h) for _ in range(config.n_layers))  # Φ^(l)
        self.update = nn.ModuleList(mlp(h, h, h) for _ in range(config.n_layers))  # Θ^(l)
        self.decoder = mlp(h, h, 1)
        centers = torch.linspace(0.0, config.cutoff_A, config.n_rbf)
        self.register_buffer("rbf_centers_A", centers, persistent=False)

    def edge_encoding(self, distance_A: torch.Tensor) -> list[torch.Tensor]:
        """e^(0), …, e^(n) of every pair, (n_pairs, h) each (functions of the distance only)."""
        c = self.config
        rbf = torch.exp(-(((distance_A[:, None] - self.rbf_centers_A) / c.rbf_width_A) ** 2))
        e0 = self.edge_encoder(rbf)
        return [e0, *(layer(e0) for layer in self.edge_layers)]

    def radial_terms(self, distance_A: torch.Tensor) -> list[torch.Tensor]:
        """What the edges feed each layer: Φ1^(l)(e^(l−1)) for l = 1…n, then D1(e^(n)) (direct).

        The first linear map of an MLP acting on v_i + v_j + e splits into W v_i + W v_j +
        (W e + b); the last part depends on the distance alone, so it can be tabulated.
        """
        edges = self.edge_encoding(distance_A)
        terms = [self.message[layer][0](edges[layer]) for layer in range(self.config.n_layers)]
        if not self.config.conservative:
            terms.append(self.decoder[0](edges[-1]))
        return terms

    def forward(
        self,
        species_index: torch.Tensor,
        pair_i: torch.Tensor,
        pair_j: torch.Tensor,
        distance_A: torch.Tensor,
        *,
        table: RadialTable | None = None,
    ) -> torch.Tensor:
        c = self.config
        one_hot = nn.functional.one_hot(species_index, len(c.species)).to(distance_A.dtype)
        v = self.node_encoder(one_hot)
        envelope = cosine_cutoff(distance_A, c.cutoff_A)[:, None]
        if table is None:
            terms = self.radial_terms(distance_A)

            def plus_radial(term: int, base: torch.Tensor) -> torch.Tensor:
                return base + terms[term]
        else:
            weights = table.weights(distance_A)

            def plus_radial(term: int, base: torch.Tensor) -> torch.Tensor:
                return torch.addmm(base, weights, table.blocks[term])  # base + B(d) · C_term, fused

        n_atoms = v.shape[0]
        for layer in range(c.n_layers):
            phi_in, act, phi_out = self.message[layer]
            node_part = nn.functional.linear(v, phi_in.weight)
            pre = plus_radial(layer, node_part.index_select(0, pair_i) + node_part.index_select(0, pair_j))
            gate = phi_out(act(pre)) * envelope
            # m_{j→i} = Φ ⊙ v_j goes to i; m_{i→j} = Φ ⊙ v_i goes to j (Φ is symmetric in i, j).
            messages = v.new_zeros(n_atoms, c.hidden)
            messages.index_add_(0, pair_i, gate * v.index_select(0, pair_j))
            messages.index_add_(0, pair_j, gate * v.index_select(0, pair_i))
            v = self.update[layer](v + messages / c.aggregation_norm) + v
        if c.conservative:
            return self.decoder(v)[:, 0]
        dec_in, act, dec_out = self.decoder
        node_part = nn.functional.linear(v, dec_in.weight)
        pre = plus_radial(c.n_layers, node_part.index_select(0, pair_i) + node_part.index_select(0, pair_j))
        return dec_out(act(pre))[:, 0] * envelope[:, 0]


class RadialTable:
    """The distance-only terms of a :class:`GNNModule`, tabulated for fast inference.

    The terms T(d) (n_terms × h values per distance) are computed in float64 with their
    derivatives on a uniform grid over [0, r_c] and factorised by SVD, T(d) ≈ B(d) · C with a
    basis B of rank K (the smallest giving a relative error below ``tolerance``; K = 65 for the
    shipped model against n_terms × h = 640 outputs, forces within 3e-6 (relative) of the exact
    network). Per pair only the K basis functions are interpolated (cubic Hermite: C¹, so
    forces of the conservative variant stay continuous),
    then one (P × K) · (K × n_terms h) product gives every term: the edge MLPs (A^(l), e^E,
    the edge half of Φ1 and D1) no longer run per pair, and little memory moves.
    """

    def __init__(self, module: GNNModule, *, n_points: int = 2048, tolerance: float = 1e-6) -> None:
        cutoff = module.config.cutoff_A
        self.spacing_A = cutoff / (n_points - 1)
        params = next(module.parameters())
        exact = copy.deepcopy(module).to(device=params.device, dtype=torch.float64)
        grid = torch.linspace(0.0, cutoff, n_points, dtype=torch.float64, device=params.device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.func's internal use of torch.jit
            values, slopes = torch.func.jvp(
                lambda d: torch.cat(exact.radial_terms(d), dim=1), (grid,), (torch.ones_like(grid),)
            )
        u, sv, vh = torch.linalg.svd(values, full_matrices=False)
        scale = values.abs().max().clamp_min(1e-300)
        rank = len(sv)
        for k in range(1, len(sv) + 1):
            if ((u[:, :k] * sv[:k]) @ vh[:k] - values).abs().max() <= tolerance * scale:
                rank = k
                break
        self.rank = rank
        self.n_terms = values.shape[1] // module.config.hidden
        basis = u[:, :rank] * sv[:rank]  # (n_points, K)
        self.basis = basis.to(params.dtype).contiguous()
        self.basis_slopes = (slopes @ vh[:rank].T * self.spacing_A).to(params.dtype).contiguous()
        self.coefficients = vh[:rank].to(params.dtype).contiguous()  # (K, n_terms · h)

        self.blocks = [block.contiguous() for block in self.coefficients.chunk(self.n_terms, dim=1)]

    @property
    def values(self) -> torch.Tensor:
        return self.basis

    def weights(self, distance_A: torch.Tensor) -> torch.Tensor:
        """(n_pairs, K) basis functions at the given distances (cubic Hermite interpolation)."""
        last = self.basis.shape[0] - 1
        x = (distance_A / self.spacing_A).clamp(0.0, float(last))
        # The interval index is clamped as an integer: in float32, d a hair below r_c rounds to
        # the last grid point. A NaN distance reads interval 0 and stays NaN through t.
        k = torch.nan_to_num(x.detach(), nan=0.0).floor().long().clamp(0, last - 1)
        t = (x - k.to(x.dtype))[:, None]
        t2, t3 = t * t, t * t * t
        h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2
        return (
            h00 * self.basis.index_select(0, k)
            + h10 * self.basis_slopes.index_select(0, k)
            + h01 * self.basis.index_select(0, k + 1)
            + h11 * self.basis_slopes.index_select(0, k + 1)
        )

    def __call__(self, distance_A: torch.Tensor) -> list[torch.Tensor]:
        """Every term, (n_pairs, h) each (the network fuses them instead; for checks)."""
        weights = self.weights(distance_A)
        return [weights @ block for block in self.blocks]


class GNNForceField(ForceField):
    """The GNN as an engine force field (float32 by default; follows the state's device).

    Args:
        config: architecture; ``GNNConfig()`` gives the seeds' h = 128, n = 4, r_c = 7.5 Å.
        module: trained weights (a fresh, randomly initialised network when None).
        seed: initialisation seed of a fresh network.
        dtype: dtype the network computes in; states of another dtype are converted.
        radial_table_points: tabulate the distance-only terms on this many points for fast
            inference (:class:`RadialTable`); 0 evaluates the edge MLPs for every pair.
    """

    def __init__(
        self,
        config: GNNConfig | None = None,
        *,
        module: GNNModule | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        provenance: dict[str, Any] | None = None,
        radial_table_points: int = 2048,
    ) -> None:
        self.radial_table_points = int(radial_table_points)
        #: On a CPU, evaluate packs in groups of whole systems of at most this many atoms (0: never).
        self.max_atoms_per_chunk = 512
        self._table: RadialTable | None = None
        self.gnn_config = config or (module.config if module is not None else GNNConfig())
        if module is None:
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            module = GNNModule(self.gnn_config)
            torch.random.set_rng_state(generator_state)
        self.module = module.to(dtype)
        self.module.eval()
        self.compute_dtype = dtype
        self.cutoff_A = self.gnn_config.cutoff_A
        self.provenance = dict(provenance or {})
        self._species_lookup: dict[torch.device, torch.Tensor] = {}
        self._weights_digest: str | None = None

    # ------------------------------------------------------------------ contract
    @property
    def provides_energy(self) -> bool:
        """Only the conservative variant has an energy; the direct one predicts forces."""
        return bool(self.gnn_config.conservative)

    def config(self) -> dict[str, Any]:
        if self._weights_digest is None:
            self._weights_digest = weights_digest(self.module)
        return {
            "gnn": self.gnn_config.to_dict(),
            "weights_blake2b": self._weights_digest,
            "radial_table_points": self.radial_table_points,
        }

    def to(self, device: torch.device | str) -> GNNForceField:
        self.module.to(device)
        self._table = None
        return self

    def radial_table(self) -> RadialTable | None:
        """The tabulated radial terms on the module's device (built once; None when disabled)."""
        if self.radial_table_points <= 0:
            return None
        device = next(self.module.parameters()).device
        if self._table is None or self._table.values.device != device:
            self._table = RadialTable(self.module, n_points=self.radial_table_points)
        return self._table

    def species_index(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """(n_atoms,) row of each atom's species in ``config.species``; unknown species raise."""
        dev = atomic_numbers.device
        if dev not in self._species_lookup:
            table = torch.full((119,), -1, dtype=torch.int64)
            for k, z in enumerate(self.gnn_config.species):
                table[z] = k
            self._species_lookup[dev] = table.to(dev)
        index = self._species_lookup[dev][atomic_numbers]
        if bool((index < 0).any()):
            missing = sorted(set(atomic_numbers[index < 0].tolist()))
            raise ValueError(
                f"the GNN was trained on atomic numbers {list(self.gnn_config.species)}; the system has {missing}"
            )
        return index

    def _module_on(self, device: torch.device) -> GNNModule:
        first = next(self.module.parameters())
        if first.device != device:
            self.module.to(device)
            self._table = None
        return self.module

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        cfg = self.gnn_config
        dev, out_dtype = state.device, state.dtype
        module = self._module_on(dev)
        nl = pairs_for(state, neighbors, cutoff_A=cfg.cutoff_A)
        species = self.species_index(state.atomic_numbers)
        with torch.no_grad():
            d_all = nl.pair_vectors_t(state).to(self.compute_dtype)
            keep = torch.nonzero((d_all * d_all).sum(0) < cfg.cutoff_A * cfg.cutoff_A).squeeze(1)
            vectors = d_all.index_select(1, keep).t().contiguous()
        pair_i, pair_j = nl.pair_i.index_select(0, keep), nl.pair_j.index_select(0, keep)
        pair_system = nl.pair_system.index_select(0, keep)
        table = self.radial_table()
        parts = []
        for (s0, s1), (a0, a1), (p0, p1) in self._chunks(state, pair_system):
            with torch.enable_grad() if cfg.conservative else torch.no_grad():
                parts.append(
                    evaluate(
                        module,
                        species[a0:a1],
                        pair_i[p0:p1] - a0,
                        pair_j[p0:p1] - a0,
                        vectors[p0:p1],
                        system_of_atom=state.system_idx[a0:a1] - s0,
                        n_systems=s1 - s0,
                        table=table,
                    )
                )
        energy = None if parts[0][0] is None else torch.cat([p[0].detach() for p in parts])
        forces = torch.cat([p[1].detach() for p in parts])
        pair_term = torch.cat([p[2].detach() for p in parts])
        scale = cfg.force_scale_eV_per_A
        energy = forces.new_zeros(state.n_systems) if energy is None else energy.detach() * scale
        stress = None
        if compute_stress:
            per_system = pair_term.new_zeros(state.n_systems, 3, 3).index_add_(0, pair_system, pair_term)
            stress = per_system.to(out_dtype) * scale / state.volume[:, None, None]
        forces = forces * scale
        return ForceOutput(energy=energy.to(out_dtype), forces=forces.to(out_dtype), stress=stress)

    def _chunks(self, state: BatchState, pair_system: torch.Tensor) -> list[tuple[tuple[int, int], ...]]:
        """Consecutive groups of whole systems, ≤ ``max_atoms_per_chunk`` atoms each (one group on CUDA).

        The message passing is bound by memory traffic over per-pair arrays; on a CPU, groups
        whose arrays stay in cache run several times faster than one big graph.
        Returns ((system range), (atom range), (pair range)) per group.
        """
        limit = self.max_atoms_per_chunk if state.device.type == "cpu" else 0
        n_sys = state.n_systems
        whole = (((0, n_sys), (0, state.n_atoms), (0, int(pair_system.shape[0]))),)
        if limit <= 0 or state.n_atoms <= limit or n_sys == 1:
            return list(whole)
        if pair_system.numel() > 1 and bool((pair_system[1:] < pair_system[:-1]).any()):
            return list(whole)  # not system-major (never from the engine's lists)
        atom_bounds = state.system_offsets().tolist()
        pair_bounds = torch.searchsorted(pair_system, torch.arange(n_sys + 1, device=pair_system.device)).tolist()
        groups, start = [], 0
        for system in range(1, n_sys + 1):
            if system == n_sys or atom_bounds[system + 1] - atom_bounds[start] > limit:
                groups.append(
                    (
                        (start, system),
                        (atom_bounds[start], atom_bounds[system]),
                        (pair_bounds[start], pair_bounds[system]),
                    )
                )
                start = system
        return groups


def evaluate(
    module: GNNModule,
    species_index: torch.Tensor,
    pair_i: torch.Tensor,
    pair_j: torch.Tensor,
    vectors_A: torch.Tensor,
    *,
    system_of_atom: torch.Tensor,
    n_systems: int,
    create_graph: bool = False,
    table: RadialTable | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Energies, forces and per-pair virial terms of a graph, in normalised units (× scale → eV).

    Args:
        vectors_A: (n_pairs, 3) r_j − r_i of the half pair list, every pair within the cutoff.
        system_of_atom: (n_atoms,) system index; n_systems: number of systems.
        create_graph: keep the graph of the forces (training the conservative variant).
        table: tabulated radial terms (inference); None evaluates the edge MLPs exactly.

    Returns:
        energy (n_systems,) or None for the direct model; forces (n_atoms, 3);
        pair virial terms (n_pairs, 3, 3), d ⊗ ∂E/∂d, summing to V·σ.

    Nine arguments: the module and the graph arrays it needs (kept flat so training and
    inference share this one function without building a state object per batch).
    """
    n_atoms = species_index.shape[0]
    if module.config.conservative:
        if not vectors_A.requires_grad:
            vectors_A = vectors_A.detach().requires_grad_(True)
        r = torch.sqrt((vectors_A * vectors_A).sum(1))
        atomic = module(species_index, pair_i, pair_j, r, table=table)
        energy = sum_per_system(atomic, system_of_atom, n_systems)
        (grad_d,) = torch.autograd.grad(energy.sum(), vectors_A, create_graph=create_graph)
        # d = r_j − r_i: ∂E/∂r_j = +g, ∂E/∂r_i = −g; F = −∂E/∂r.
        forces = grad_d.new_zeros(n_atoms, 3).index_add(0, pair_i, grad_d).index_add(0, pair_j, -grad_d)
        return energy, forces, vectors_A[:, :, None] * grad_d[:, None, :]
    r = torch.sqrt((vectors_A * vectors_A).sum(1))
    weights = module(species_index, pair_i, pair_j, r, table=table)
    fvec = vectors_A * (weights / r)[:, None]  # force on i from j, along q_ij
    forces = fvec.new_zeros(n_atoms, 3).index_add(0, pair_i, fvec).index_add(0, pair_j, -fvec)
    # σ = (1/V) Σ d ⊗ ∂E/∂d with the pair's "∂E/∂d" = −F_j = fvec.
    return None, forces, vectors_A[:, :, None] * fvec[:, None, :]
