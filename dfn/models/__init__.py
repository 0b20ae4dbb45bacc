"""LightningModules: one per experiment (the science: loss, metrics, what to log)."""
from dfn.models.base import CheckpointMismatch, ConfigError, DFNModule
from dfn.models.steerable import SteerableFilterModel

__all__ = ["CheckpointMismatch", "ConfigError", "DFNModule", "SteerableFilterModel"]
