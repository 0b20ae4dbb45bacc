"""The run machinery around the models: ``python -m dfn`` (:mod:`~dfn.harness.cli`), its errors
(:mod:`~dfn.harness.failures`), signals, checkpoint files, CPU share and help text, and
:mod:`~dfn.harness.lightning_seams`, the one module that touches private Lightning and W&B members.

Nothing is imported here: ``dfn.harness.cpu_share`` must load before torch does.
"""
