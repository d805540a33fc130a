"""Oracles: who provides the labels of queried samples."""

from __future__ import annotations

from medactive.oracle.simulated import Oracle, SimulatedOracle

__all__ = ["Oracle", "SimulatedOracle"]
