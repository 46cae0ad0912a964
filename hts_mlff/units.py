"""Physical constants and unit conversions; the one place they live.

Internal unit system (ASE/LAMMPS "metal"-like):
length Å, time fs, mass amu, energy eV, temperature K, pressure bar at the
interface (eV/Å³ inside the engine), velocity Å/fs, force eV/Å.
"""

from __future__ import annotations

#: Boltzmann constant, eV/K (CODATA 2018).
BOLTZMANN_EV_PER_K = 8.617333262e-5

#: 1 eV/(Å·amu) expressed in Å/fs². Multiply force/mass by this for an acceleration.
ACCEL_A_PER_FS2_PER_EV_PER_A_AMU = 1.602176634e-19 / (1e-10 * 1.66053906660e-27) * 1e10 / 1e30

#: Kinetic energy of 1 amu·Å²/fs² in eV (the inverse of the constant above).
EV_PER_AMU_A2_PER_FS2 = 1.0 / ACCEL_A_PER_FS2_PER_EV_PER_A_AMU

#: 1 eV/Å³ in bar.
BAR_PER_EV_PER_A3 = 1.602176634e-19 / 1e-30 / 1e5

#: 1 bar in eV/Å³.
EV_PER_A3_PER_BAR = 1.0 / BAR_PER_EV_PER_A3

#: Elementary charge, C (exact, SI 2019); also J per eV.
ELEMENTARY_CHARGE_C = 1.602176634e-19

#: 1 Å²/fs in cm²/s.
CM2_PER_S_PER_A2_PER_FS = 0.1

#: Avogadro's number, 1/mol.
AVOGADRO_PER_MOL = 6.02214076e23

#: ASE's internal time unit expressed in fs (ASE uses Å, eV, amu → 1 unit ≈ 10.18 fs).
FS_PER_ASE_TIME = 1e15 * (1e-10 * (1.66053906660e-27 / 1.602176634e-19) ** 0.5)


def mass_density_to_number_density(density_g_per_cm3: float, *, mass_amu: float) -> float:
    """Mass density (g/cm³) → number density (1/Å³) for a one-species material."""
    return density_g_per_cm3 * AVOGADRO_PER_MOL / mass_amu * 1e-24


def number_density_to_fcc_lattice(number_density_per_A3: float) -> float:
    """Number density (1/Å³) → cubic FCC lattice constant (Å); 4 atoms per cubic cell."""
    return (4.0 / number_density_per_A3) ** (1.0 / 3.0)


#: Planck constant, eV·s (exact, SI 2019).
PLANCK_EV_S = 4.135667696e-15


def debye_temperature_to_frequency_THz(debye_temperature_K: float) -> float:
    """Debye frequency ν_D = k_B Θ_D / h in THz (1/ps); Θ_D = 92 K (solid argon) gives 1.92 THz."""
    return BOLTZMANN_EV_PER_K * debye_temperature_K / PLANCK_EV_S * 1e-12


#: 1 eV/(Å·fs·K) in W/(m·K): thermal conductivity from heat currents in eV·Å/fs.
W_PER_M_K_PER_EV_PER_A_FS_K = 1.602176634e-19 / (1e-10 * 1e-15)

#: Reduced Planck constant, eV·ps: ħω/(k_B T) with ω in rad/ps.
HBAR_EV_PS = PLANCK_EV_S * 1e12 / (2 * 3.141592653589793)

#: Coulomb constant e²/(4πε₀) in eV·Å (CODATA 2018: 1.602176634e-19 C / (4π ε₀ · 1e-10 m)).
COULOMB_EV_A = 14.399645478
