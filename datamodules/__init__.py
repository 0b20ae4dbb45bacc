"""LightningDataModules of the dfn experiments (bouncing MNIST, highway/stereo HDF5, steerable)."""
