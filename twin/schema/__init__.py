"""Typed, frozen models of sites, scenarios and workloads (pydantic)."""
