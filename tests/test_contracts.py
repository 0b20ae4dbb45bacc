"""The contracts between injected parts (dfn/contracts.py): a part that lacks what its neighbour
needs is one clear error when the parts meet, not an AttributeError at the first batch."""
import pytest
import torch
from torch import nn

from dfn.contracts import FilterGenerator, HeldOutSequences, StartableGenerator, VideoPredictor, check, members
from dfn.errors import ConfigError
from dfn.nets import EncoderDecoder, PixelMLP
from dfn.predictors import ConvLSTMPredictor, CopyLastFrame, DynamicFilterPredictor
from hdf5_data import stereo_planes


def test_a_protocol_requires_its_own_and_its_bases_members():
    assert set(members(StartableGenerator)) == {"in_channels", "out_channels", "forward", "start_output"}
    assert set(members(HeldOutSequences)) == {"val_set", "test_sets"}


@pytest.mark.parametrize("part,protocol", [(EncoderDecoder(in_channels=2), StartableGenerator),
                                           (CopyLastFrame(), VideoPredictor),
                                           (ConvLSTMPredictor(channels=1), VideoPredictor)])
def test_dfns_own_parts_keep_their_contracts(part, protocol):
    check(part, protocol, "part", "fix")


class NoHidden(nn.Module):
    """A generator without ``in_channels`` and whose forward takes no state."""
    out_channels = 81

    def forward(self, x):
        return x


def test_what_a_part_lacks_is_named_with_the_fix():
    with pytest.raises(ConfigError) as raised:
        check(NoHidden(), FilterGenerator, "the predictor's net", "use dfn.nets.EncoderDecoder")
    assert str(raised.value) == ("the predictor's net NoHidden is not a FilterGenerator (no in_channels, "
                                 "forward(x) where forward(x, hidden) is needed): use dfn.nets.EncoderDecoder")


def test_a_property_that_needs_setup_is_not_called_by_the_check(tmp_path):
    from datamodules import StereoHDF5DataModule
    data = StereoHDF5DataModule(path=str(stereo_planes(tmp_path / "s.h5")), size=[32, 32])
    check(data, HeldOutSequences, "the DataModule", "fix")          # val_set / test_sets need setup
    with pytest.raises(ConfigError, match="no val_set, no test_sets"):
        check(torch.nn.Identity(), HeldOutSequences, "the DataModule", "fix")


def test_a_net_without_a_state_argument_is_refused_when_the_predictor_is_built():
    with pytest.raises(ConfigError, match="PixelMLP is not a FilterGenerator .forward.x. where"):
        DynamicFilterPredictor(PixelMLP(in_channels=1, out_channels=81), kernel_size=9)


def test_the_cli_refuses_a_net_that_cannot_start_at_the_identity_in_one_line(tmp_path, stereo_tiny, dfn_main):
    status, err = dfn_main(["fit", *stereo_tiny(stereo_planes(tmp_path / "s.h5")),
                            "--model.init_args.predictor.init_args.net", "dfn.nets.PixelMLP",
                            "--model.init_args.predictor.init_args.net.init_args.out_channels", "14",
                            "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "1"])
    assert status == 2 and err.count("\n") == 1 and "is not a StartableGenerator" in err, err
    assert not (tmp_path / "run/checkpoints").exists()
