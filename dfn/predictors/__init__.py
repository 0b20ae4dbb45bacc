"""Video / view predictors: ``forward(observed (B, T_in, C, H, W), future) -> (predictions, filters)``.

The contract: ``forward(observed, future, return_filters=False)`` returns the predictions
``(B, future, C, H, W)`` and, when asked, the filters that made them ``(B, future, kh*kw, H, W)``
(else ``None``); ``filter_window`` is their :class:`dfn.ops.geometry.Window` (``kh, kw`` and
the origin ``oy, ox``), or ``None`` for a predictor that has no filters. A predictor whose
generator can also see the frames it predicts takes ``guide (B, future, C, H, W)`` as well
(binocular stereo: :class:`DynamicFilterPredictor`). The LightningModules in ``dfn.models`` own
losses and metrics; a predictor only predicts, so the DFN and its baselines run through the same
harness.
"""
from dfn.predictors.conv_lstm import ConvLSTMPredictor
from dfn.predictors.copy_last import CopyLastFrame
from dfn.predictors.dynamic_filter_predictor import DynamicFilterPredictor

__all__ = ["ConvLSTMPredictor", "CopyLastFrame", "DynamicFilterPredictor"]
