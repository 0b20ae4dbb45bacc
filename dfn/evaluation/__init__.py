"""What is scored: frame metrics (:mod:`~dfn.evaluation.metrics`), the filters read out as flow and
disparity (:mod:`~dfn.evaluation.readout`) and the analytic steerable filters
(:mod:`~dfn.evaluation.analytic_steerable`). Knows torch and torchmetrics, not Lightning."""
