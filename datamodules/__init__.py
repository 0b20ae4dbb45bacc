"""LightningDataModules of the dfn experiments (steerable; bouncing MNIST, highway/stereo HDF5 to come)."""
from datamodules.bouncing_mnist import BouncingMNISTDataModule
from datamodules.steerable import SteerableDataModule

__all__ = ["BouncingMNISTDataModule", "SteerableDataModule"]
