"""LightningDataModules of the dfn experiments: steerable, bouncing MNIST, highway / stereo HDF5."""
from datamodules.bouncing_mnist import BouncingMNISTDataModule
from datamodules.hdf5_frames import StereoHDF5DataModule, VideoHDF5DataModule
from datamodules.steerable_data import SteerableDataModule

__all__ = ["BouncingMNISTDataModule", "StereoHDF5DataModule", "SteerableDataModule", "VideoHDF5DataModule"]
