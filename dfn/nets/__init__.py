"""Filter-generating networks. Each exposes ``out_channels`` so a model can check it against its layer."""
from dfn.nets.encoder_decoder import EncoderDecoder
from dfn.nets.mlp import PixelMLP

__all__ = ["EncoderDecoder", "PixelMLP"]
