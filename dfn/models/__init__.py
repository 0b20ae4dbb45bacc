"""LightningModules: one per experiment (the science: loss, metrics, what to log)."""
from dfn.models.base import CheckpointMismatch, ConfigError, DFNModule
from dfn.models.steerable_filter_model import SteerableFilterModel
from dfn.models.video_prediction_model import VideoPredictionModel

__all__ = ["CheckpointMismatch", "ConfigError", "DFNModule", "SteerableFilterModel", "VideoPredictionModel"]
