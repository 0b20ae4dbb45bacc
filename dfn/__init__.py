"""dfn: Dynamic Filter Networks (De Brabandere et al., NIPS 2016) in PyTorch Lightning."""
__version__ = "0.1.0"
