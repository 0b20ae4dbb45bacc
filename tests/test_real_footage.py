"""Real textures with known geometry: the scene generator, the read-outs, a stable start,
augmentation that keeps the geometry, and fitting and testing a single stereo pair."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datamodules.augment import Augmentation, apply, draw
from dfn.footage.scenes import SceneSettings, photographs, stereo_pair, video
from dfn.harness.cli import DfnCLI, main
from dfn.layers import DynamicLocalFilter
from dfn.evaluation.metrics import frame_se
from dfn.ops.geometry import Window
from dfn.evaluation.readout import ReadoutScores, disparity_on_left_grid, expected_shift, flow_on_source_grid
from helpers import ROOT

QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return photographs()


@pytest.fixture(scope="module")
def stereo_file(tmp_path_factory) -> Path:
    """8 generated pairs at 96x128 (max disparity 8 px), packed to 64x64 with ground truth."""
    root = tmp_path_factory.mktemp("stereo")
    main(["scenes", "stereo", str(root / "scenes"), "--count", "8", "--size", "96", "128",
          "--max-disparity", "8"])
    main(["pack", str(root / "scenes/left"), str(root / "scenes/right"), str(root / "s.h5"), "--size", "64", "64",
          "--disparity", str(root / "scenes/disparity"), "--no-progress"])
    return root / "s.h5"


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    """3 generated clips of 12 frames at 64x64 with flow."""
    root = tmp_path_factory.mktemp("video")
    main(["scenes", "video", str(root / "scenes"), "--count", "3", "--frames", "12", "--size", "64", "64"])
    main(["pack", str(root / "scenes/frames"), str(root / "v.h5"), "--flow", str(root / "scenes/flow"),
          "--no-progress"])
    return root / "v.h5"


def one_hot_filters(offset_x: torch.Tensor, offset_y: torch.Tensor, w: Window) -> torch.Tensor:
    """Filters ``(B, kh*kw, H, W)`` of window ``w`` reading exactly ``(offset_y, offset_x)``
    (integers) per pixel."""
    taps = (offset_y - w.oy) * w.kw + (offset_x - w.ox)
    assert taps.min() >= 0 and taps.max() < w.taps
    return torch.nn.functional.one_hot(taps.long(), w.taps).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("layout", ["layers", "street"])
def test_stereo_pairs_obey_their_disparity(photos, layout):
    """Where the left view's surface is planar and visible in both views, the right view at
    x - d(x) shows the left view at x; a street's ground comes nearer row by row."""
    rng = np.random.default_rng(1)
    left, right, disparity = stereo_pair(photos, rng, SceneSettings(size=(64, 96), layers=0, smooth=0.0,
                                                                    layout=layout))
    if layout == "street":
        assert (np.diff(disparity[:, 0]) > 0).all() and np.ptp(disparity, axis=1).max() < 1e-5
    assert left.std() > 0.05 and 0 <= disparity.min() and disparity.max() <= 10
    y, x = np.mgrid[0:64, 8:88]
    target = x - disparity[y, x]
    lower = np.floor(target).astype(int)
    frac = target - lower
    sampled = right[y, lower] * (1 - frac) + right[y, lower + 1] * frac
    assert np.abs(sampled - left[y, x]).mean() < 0.02 < np.abs(right[y, x] - left[y, x]).mean()


def moved(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``frame (H, W)`` with its content moved by ``(dx, dy)`` px: ``out(x) = frame(x - d)``,
    bilinear."""
    H, W = frame.shape
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")
    grid = torch.stack([(x - dx) / (W - 1) * 2 - 1, (y - dy) / (H - 1) * 2 - 1], -1)[None]
    image = torch.from_numpy(frame).double()[None, None]
    return torch.nn.functional.grid_sample(image, grid, align_corners=True)[0, 0].numpy()


@pytest.mark.parametrize("seed", [2, 5, 11])
def test_video_flow_moves_frame_pixels_to_the_next_frame(photos, seed):
    """A camera pan at a sub-pixel speed: frame 0 (the texture on the pixel grid) moved by the
    stated flow is frame 1 (the same bilinear resampling the generator does), and clearly not when
    moved the other way or not at all."""
    frames, flow = video(photos, 4, np.random.default_rng(seed),
                         SceneSettings(size=(48, 48), layers=0, max_speed=2.0))
    assert np.isnan(flow[-1]).all() and np.isfinite(flow[:-1]).all()
    dx, dy = flow[0, 0, 0]
    assert np.allclose(flow[0], [dx, dy]) and np.hypot(dx, dy) > 0.3   # one layer: a camera pan
    inner = (slice(8, -8), slice(8, -8))
    error = {name: np.abs(moved(frames[0], *d)[inner] - frames[1][inner]).mean()
             for name, d in (("flow", (dx, dy)), ("reversed", (-dx, -dy)), ("none", (0.0, 0.0)))}
    assert error["flow"] < 1e-5 and min(error["reversed"], error["none"]) > 0.02, error


@pytest.mark.parametrize("w,max_disparity", [(Window(1, 13, 0, -6), 6), (Window(1, 13, 0, 0), 12),
                                             (Window(1, 25, 0, 0), 24)])
def test_disparity_read_out_of_perfect_filters_is_the_ground_truth(photos, w, max_disparity):
    """Filters that copy from the true (rounded) disparity, read out and brought to the left grid,
    reproduce the ground truth of a scene with occluding layers on the visible pixels."""
    rng = np.random.default_rng(3)
    _, _, disparity = stereo_pair(photos, rng, SceneSettings(size=(48, 64), max_disparity=max_disparity,
                                                             layers=2))
    d_left = torch.from_numpy(disparity).round()[None]
    # the right-grid field: right pixel x_R takes d of the left pixel x_R + d that lands there
    W = d_left.shape[-1]
    d_right = torch.zeros_like(d_left)
    order = d_left[0].argsort(dim=-1)                                   # nearer (larger d) drawn last
    for row in range(d_left.shape[1]):
        for x in order[row].tolist():
            target = x - int(d_left[0, row, x])
            if 0 <= target < W:
                d_right[0, row, target] = d_left[0, row, x]
    filters = one_hot_filters(d_right, torch.zeros_like(d_right), w)
    shift = expected_shift(filters, w)[:, 1]
    read_out = disparity_on_left_grid(shift)
    visible = torch.zeros_like(d_left, dtype=torch.bool)
    for row in range(d_left.shape[1]):
        for x in range(max_disparity + 2, W):
            target = x - int(d_left[0, row, x])
            visible[0, row, x] = d_right[0, row, target] == d_left[0, row, x]
    assert visible[..., max_disparity + 2:].float().mean() > 0.8
    assert (read_out[visible] - d_left[visible]).abs().max() < 1e-4


def test_pixels_hidden_from_the_right_camera_read_out_as_the_background():
    """A near object (disparity 6) before a background (2): the background just left of the
    object is hidden from the right camera, so no right pixel lands there; the read-out gives it
    the background's disparity, not the object's. The right pixels that see background the left
    camera cannot (beside the object) claim it wrongly and predict badly: the cost settles that."""
    W = 48
    truth = torch.full((1, 1, W), 2.0)
    truth[..., 20:30] = 6.0                                           # the object, on the left grid
    shift, cost = torch.full((1, 1, W), 2.0), torch.zeros(1, 1, W)
    shift[..., 14:24] = 6.0                                           # where the right view shows it
    cost[..., 24:28] = 1.0                                            # seen by the right camera only
    read_out = disparity_on_left_grid(shift, cost)
    assert torch.equal(read_out[..., 16:20], torch.full((1, 1, 4), 2.0))   # hidden: the background
    assert torch.equal(read_out, truth)                              # the first two too: no right pixel


def test_flow_read_out_of_a_constant_shift():
    shift = torch.zeros(1, 2, 16, 16)
    shift[:, 0], shift[:, 1] = -1.0, 2.0                 # reads 1 up, 2 right: content moves (-2, +1)
    flow = flow_on_source_grid(shift)
    assert flow.shape == (1, 16, 16, 2)
    assert torch.allclose(flow, torch.tensor([-2.0, 1.0]).expand(1, 16, 16, 2))


def test_readout_scores_on_known_values():
    scores = ReadoutScores()
    truth = torch.tensor([[[1.0, 2.0, float("nan"), 4.0]]])
    scores.update(torch.tensor([[[1.0, 4.0, 9.0, 4.0]]]), truth)
    result = scores.compute()
    assert result["disparity_epe"] == pytest.approx(2 / 3)
    assert result["disparity_bad1"] == pytest.approx(1 / 3)
    assert result["disparity_epe_constant"] == pytest.approx((4 / 3 + 1 / 3 + 5 / 3) / 3, rel=1e-5)
    assert result["disparity_pearson"] == pytest.approx(float(np.corrcoef([1, 4, 4], [1, 2, 4])[0, 1]), rel=1e-5)
    flows = ReadoutScores(steps=2)
    truth = torch.full((1, 2, 1, 2, 2), float("nan"))
    truth[0, 0, 0, 0] = torch.tensor([3.0, 4.0])
    truth[0, 1, 0, 1] = torch.tensor([0.0, 1.0])
    flows.update(torch.zeros(1, 2, 1, 2, 2), truth)
    result = flows.compute()
    assert result["flow_epe"] == pytest.approx(3.0) and result["flow_epe_zero"] == pytest.approx(3.0)
    assert flows.flow_curves()["flow_epe"].tolist() == pytest.approx([5.0, 1.0])


@pytest.mark.parametrize("separable,kernel_size,origin,anchor", [
    (False, 11, None, 60), (True, (5, 7), None, 17), (False, (1, 13), None, 6), (True, (1, 13), None, 6),
    (False, (1, 13), (0, 0), 0), (True, (3, 5), (-2, -1), 11)])
def test_identity_theta_puts_the_centre_weight_on_the_anchor(separable, kernel_size, origin, anchor):
    """The anchor is the tap that reads the pixel itself: tap (kh//2, kw//2) when centred."""
    layer = DynamicLocalFilter(kernel_size, softmax=True, bias_channels=1, separable=separable, origin=origin)
    theta = layer.identity_theta(0.99)[None, :, None, None].expand(1, -1, 3, 3)
    filters, bias = layer.split(theta)
    assert filters[0, anchor, 0, 0] == pytest.approx(0.99, abs=1e-5)
    assert filters[0, :, 0, 0].sum() == pytest.approx(1.0, abs=1e-5)
    assert bias.abs().max() == 0


def test_an_identity_start_needs_a_window_that_holds_the_pixel():
    layer = DynamicLocalFilter((1, 5), softmax=True, origin=(0, 1))
    with pytest.raises(ValueError, match=r"origin \(0, 1\) of a 1x5 window does not"):
        layer.identity_theta(0.99)


@pytest.mark.parametrize("config,file", [("highway", "video_file"), ("stereo", "stereo_file")])
def test_identity_start_begins_at_copy_last_on_real_textures(request, config, file):
    """The paper's configs with ``start: identity``: the step-0 loss is within 10 % of copying the
    last frame (the left view) on the same batch; for highway the paper's own start (an 11x11 blur
    plus a random bias) is far worse."""
    path = request.getfixturevalue(file)
    base = ["--config", str(ROOT / f"configs/{config}.yaml"), "--data.init_args.path", str(path)]
    losses = {}
    for start in ("identity", "paper"):
        cli = DfnCLI(args=[*base, "--model.init_args.predictor.init_args.start", start], run=False)
        batch = cli.datamodule._train_batch(torch.Generator().manual_seed(0))
        observed = batch["frames"][:, :cli.model.frames_in]
        future = batch["frames"][:, cli.model.frames_in:]
        with torch.no_grad():
            losses[start] = frame_se(cli.model(observed)[0], future).mean().item()
        copy = frame_se(observed[:, -1:].expand_as(future), future).mean().item()
    assert abs(losses["identity"] / copy - 1) < 0.1
    if config == "highway":
        assert losses["paper"] > 2 * copy


def test_augmentation_is_seeded_and_keeps_the_geometry():
    augmentation = Augmentation(vflip=True, hflip=True, crop_scale=(0.5, 1.0))
    a = draw(augmentation, torch.Generator().manual_seed(5), (0, 0, 128, 96), (64, 64))
    b = draw(augmentation, torch.Generator().manual_seed(5), (0, 0, 128, 96), (64, 64))
    assert a == b
    crops = [draw(augmentation, torch.Generator().manual_seed(s), (0, 0, 128, 96), (64, 64)).crop for s in range(50)]
    assert all(c is None or (c[2] >= 64 and c[3] >= 64 and c[0] + c[2] <= 128 and c[1] + c[3] <= 96) for c in crops)
    assert any(c is not None for c in crops)
    small = [draw(augmentation, torch.Generator().manual_seed(s), (0, 0, 64, 64), (64, 64)).crop for s in range(10)]
    assert small == [None] * 10                          # stored frames no larger than the working size
    frames = torch.rand(2, 1, 4, 5)
    flow = torch.rand(2, 4, 5, 2)
    sample = type(a)(gain=1.0, offset=0.0, vflip=False, hflip=True, crop=None)
    out, out_flow = apply(sample, frames, flow)
    assert torch.equal(out, frames.flip(-1))
    assert torch.equal(out_flow[..., 0], -flow.flip(2)[..., 0]) and torch.equal(out_flow[..., 1], flow.flip(2)[..., 1])


def test_stereo_refuses_horizontal_flips(tmp_path, stereo_file, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(stereo_file),
              "--data.init_args.augment.hflip", "true", "--run_dir", str(tmp_path / "run")])
    assert exit.value.code == 2
    assert "data.augment.hflip would mirror a stereo pair" in capsys.readouterr().err


def test_augmented_batches_are_a_function_of_the_step(stereo_file):
    cli = DfnCLI(args=["--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(stereo_file)],
                 run=False)
    first = cli.datamodule._train_batch(torch.Generator().manual_seed(7))["frames"]
    again = cli.datamodule._train_batch(torch.Generator().manual_seed(7))["frames"]
    plain = DfnCLI(args=["--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(stereo_file),
                         "--data.init_args.augment", "null"], run=False)
    unaugmented = plain.datamodule._train_batch(torch.Generator().manual_seed(7))["frames"]
    assert torch.equal(first, again) and not torch.equal(first, unaugmented)
    assert first.shape == unaugmented.shape == (16, 2, 1, 64, 64)


def test_held_out_samples_carry_ground_truth(stereo_file, video_file):
    stereo = DfnCLI(args=["--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(stereo_file),
                          "--data.init_args.test_on_training_frames", "true"], run=False).datamodule
    sample = stereo.test_sets[0][0]
    with h5py.File(stereo_file) as f:
        assert torch.equal(sample["disparity"], torch.from_numpy(f["disparity"][0]))
    assert len(stereo.test_sets[0]) == 8 and stereo.train_range == range(8)
    clip = DfnCLI(args=["--config", str(ROOT / "configs/highway.yaml"), "--data.init_args.path", str(video_file)],
                  run=False).datamodule
    assert clip.test_sets[0][0]["flow"].shape == (6, 64, 64, 2)


def test_a_single_pair_fits_and_tests_on_itself_with_read_out_scores(tmp_path, stereo_file):
    single = tmp_path / "one.h5"
    with h5py.File(stereo_file) as f, h5py.File(single, "w") as g:
        for name in ("left", "right", "disparity"):
            g.create_dataset(name, data=f[name][:1])
    args = ["--config", str(ROOT / "configs/stereo.yaml"), "--config", str(ROOT / "configs/stereo_single_pair.yaml"),
            "--data.init_args.path", str(single), "--data.init_args.batch_size", "4",
            "--run_dir", str(tmp_path / "run"), *QUIET]
    DfnCLI(args=["fit", *args, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3"])
    DfnCLI(args=["test", *args, "--ckpt_path", "last"])
    metrics = json.loads(next((tmp_path / "run").glob("test_results_step*.json")).read_text())["metrics"]
    for name in ("disparity_epe", "disparity_pearson", "disparity_bad1", "disparity_epe_constant", "mse"):
        assert np.isfinite(metrics[f"test/{name}"]), name
    assert metrics["test/disparity_epe_constant"] > 0.1           # the generated pair is not flat


def test_video_test_reports_flow_scores(tmp_path, video_file):
    args = ["--config", str(ROOT / "configs/highway.yaml"), "--data.init_args.path", str(video_file),
            "--run_dir", str(tmp_path / "run"), "--data.init_args.batch_size", "4", *QUIET]
    DfnCLI(args=["fit", *args, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2"])
    DfnCLI(args=["test", *args, "--ckpt_path", "last"])
    metrics = json.loads(next((tmp_path / "run").glob("test_results_step*.json")).read_text())["metrics"]
    assert metrics["test/flow_epe_zero"] > 0.3                     # the generated clips move
    # two steps from the identity start: filters still read (almost) from the centre
    assert metrics["test/flow_epe"] == pytest.approx(metrics["test/flow_epe_zero"], rel=0.2)


def test_test_and_predict_reuse_the_run_config(tmp_path, stereo_file):
    """A run trained with non-default filters (1x9): ``--config <run>/config.yaml`` is all that
    test and predict need; the 1x9 net loads and the read-out files are written."""
    run = tmp_path / "run"
    NET = "--model.init_args.predictor.init_args."
    DfnCLI(args=["fit", "--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(stereo_file),
                 NET + "kernel_size", "[1, 9]", NET + "net.init_args.head", "[128, 10]",
                 "--data.init_args.batch_size", "2", "--run_dir", str(run), "--trainer.max_steps", "2",
                 "--trainer.val_check_interval", "2", "--data.init_args.val_samples", "2", *QUIET])
    saved = ["--config", str(run / "config.yaml"), "--ckpt_path", "last", *QUIET]
    DfnCLI(args=["test", *saved])
    DfnCLI(args=["predict", *saved, "--data.init_args.predict_samples", "2"])
    report = json.loads(next(run.glob("test_results_step*.json")).read_text())
    assert report["global_step"] == 2 and "test/disparity_epe" in report["metrics"]
    maps = sorted((run / "predictions").glob("*_disparity.npy"))
    assert len(maps) == 2 and np.load(maps[0]).shape == (64, 64)


def test_predict_returns_the_disparity_at_the_stored_resolution_on_request(tmp_path, stereo_file, dfn_main,
                                                                          moving_mnist_tiny):
    """Working at 32x32 on pairs stored at 64x64: ``_disparity_stored.npy`` is the working map
    brought to 64x64 with twice its values; a generated dataset has no stored size to match."""
    run = tmp_path / "run"
    config = ["--config", str(ROOT / "configs/stereo.yaml"), "--data.init_args.path", str(stereo_file),
              "--data.init_args.size", "[32, 32]", "--model.init_args.predictor.init_args.net.init_args.image_size",
              "32", "--model.init_args.predictor.init_args.net.init_args.untied_bias", "[]", *QUIET]
    DfnCLI(args=["fit", *config, "--data.init_args.batch_size", "2", "--run_dir", str(run),
                 "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"])
    DfnCLI(args=["predict", *config, "--run_dir", str(run), "--ckpt_path", "last", "--data.init_args.predict_samples",
                 "1", "--trainer.callbacks.init_args.stored_resolution", "true"])
    name = next((run / "predictions").glob("*_prediction.npy")).name.removesuffix("_prediction.npy")
    working, stored = (np.load(run / f"predictions/{name}_disparity{ext}.npy") for ext in ("", "_stored"))
    assert working.shape == (32, 32) and stored.shape == (64, 64)
    assert stored.mean() == pytest.approx(2 * working.mean(), rel=0.02)
    pair = np.load(run / f"predictions/{name}_prediction.npy")
    assert pair.shape == (1, 32, 32, 1)
    status, err = dfn_main(["predict", *moving_mnist_tiny(tmp_path / "cache"), "--run_dir", str(tmp_path / "mnist"),
                            "--trainer.callbacks.init_args.stored_resolution", "true"])
    assert status == 2 and "no stored frames" in err, err


def test_the_readme_recipe_for_your_own_stereo_pair(tmp_path):
    """README, "Your own stereo pair": pack, fit with the three configs, predict at the stored
    resolution (run as the README writes them; a short fit)."""
    rendered = tmp_path / "photos"
    main(["scenes", "stereo", str(rendered), "--count", "1", "--size", "96", "128", "--max-disparity", "12"])
    pair = tmp_path / "pair.h5"
    main(["pack", str(rendered / "left"), str(rendered / "right"), str(pair), "--size", "64", "64", "--no-progress"])
    run = tmp_path / "runs/stereo_single_pair"
    DfnCLI(args=["fit", "--config", str(ROOT / "configs/stereo.yaml"), "--config", str(ROOT / "configs/stereo_single_pair.yaml"),
                 "--config", str(ROOT / "configs/stereo_binocular.yaml"), "--data.init_args.path", str(pair),
                 "--run_dir", str(run), "--trainer.max_steps", "2", "--data.init_args.batch_size", "2", *QUIET])
    DfnCLI(args=["predict", "--config", str(run / "config.yaml"), "--ckpt_path", "last",
                 "--trainer.callbacks.init_args.stored_resolution", "true", *QUIET])
    assert np.load(run / "predictions/seq00000_disparity.npy").shape == (64, 64)
    assert np.load(run / "predictions/seq00000_disparity_stored.npy").shape == (64, 64)   # packed at 64


@pytest.mark.parametrize("overlay", ["highway_128", "highway_256", "stereo_128", "stereo_256", "binocular_128",
                                     "binocular_256"])
def test_the_size_overlays_build_and_predict_at_their_size(overlay, stereo_file, video_file):
    """configs/sizes/: each overlay, layered as its header says, builds a model that predicts at
    its size, with filters whose reach grows with the frame."""
    experiment, size = overlay.split("_")
    size = int(size)
    layers = {"highway": ["highway"], "stereo": ["stereo"], "binocular": ["stereo", "stereo_binocular"]}[experiment]
    args = [a for name in layers for a in ("--config", str(ROOT / f"configs/{name}.yaml"))]
    data = video_file if experiment == "highway" else stereo_file
    cli = DfnCLI(args=[*args, "--config", str(ROOT / f"configs/sizes/{overlay}.yaml"), "--data.init_args.path",
                       str(data), *QUIET], run=False)
    model = cli.model.eval()
    frames = model.frames_in + model.frames_out
    batch = torch.rand(1, frames, 1, size, size)
    observed, future = model.split_frames({"frames": batch})
    with torch.no_grad():
        prediction, filters = model(observed, return_filters=True, future=future)
    assert prediction.shape == future.shape and cli.datamodule.val_set[0]["frames"].shape[-1] == size
    reach = model.filter_window.kw - 1 + model.filter_window.ox                  # the farthest offset, px
    assert reach > {"highway": 5, "stereo": 6, "binocular": 24}[experiment], model.filter_window   # at 64 px
