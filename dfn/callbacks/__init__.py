"""Callbacks: run bookkeeping (W&B id, configs, checkpoints) and each experiment's pictures and writers."""
from dfn.callbacks.results import TestResultsWriter
from dfn.callbacks.run import (Bf16Hint, CheckpointArtifacts, LastCheckpoint, NonFiniteLoss, RunCheckpoint, RunConfigSaver,
                               StopOnNonFiniteLoss, WandbRunId)
from dfn.callbacks.steerable_pictures import FilterPNGWriter, SteerableFigure
from dfn.callbacks.video_pictures import VideoPictures, VideoPredictionWriter

__all__ = ["Bf16Hint", "CheckpointArtifacts", "FilterPNGWriter", "LastCheckpoint", "NonFiniteLoss", "RunCheckpoint", "RunConfigSaver",
           "SteerableFigure", "StopOnNonFiniteLoss", "TestResultsWriter", "VideoPictures",
           "VideoPredictionWriter", "WandbRunId"]
