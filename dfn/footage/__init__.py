"""A user's footage into dfn's HDF5 schema: ``python -m dfn pack`` (:mod:`~dfn.footage.pack`),
ground-truth readers (:mod:`~dfn.footage.ground_truth`), the disparity range of stereo pairs
(:mod:`~dfn.footage.stereo_range`) and ``python -m dfn scenes``, pairs and videos of known geometry
made from photographs (:mod:`~dfn.footage.scenes`). Knows torch, h5py and PIL, not Lightning."""
