"""Key performance indicators computed from simulation results (energy, power quality, water, cost)."""
