"""Simulation: workload, power chain, thermal and cooling, vectorised over time and equipment."""
