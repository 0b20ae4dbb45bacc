"""What ``python -m dfn --help`` and ``python -m dfn <stage> --help`` say before Lightning's options."""
from __future__ import annotations

import argparse

from jsonargparse import DefaultHelpFormatter

STAGES = {
    "fit": "Train a model; --ckpt_path last resumes the run in --run_dir exactly.",
    "validate": "Evaluate a checkpoint (--ckpt_path) on the validation set.",
    "test": "Evaluate a checkpoint (--ckpt_path) on the test set(s); writes <run_dir>/test_results_step<N>.json.",
    "predict": "Write a checkpoint's predictions and pictures to <run_dir>/predictions/.",
}

MAIN = """\
Dynamic Filter Networks (De Brabandere et al., NIPS 2016): train, evaluate and use them.

  python -m dfn fit      --config configs/steerable.yaml           train (about a minute on a CPU)
  python -m dfn test     --config configs/X.yaml --ckpt_path last  evaluate the run's last checkpoint
  python -m dfn pack     SOURCE [RIGHT] OUTPUT.h5                  videos / image folders -> HDF5
  python -m dfn scenes   stereo|video FOLDER                       data with known geometry from photographs
  python -m dfn <stage> --help                                     the options of a stage

Experiments (configs/): steerable.yaml (paper 4.1), moving_mnist.yaml (4.2), highway.yaml (4.2,
your own driving video), stereo.yaml (4.3, your own stereo pairs); baselines in
configs/baselines/ (layer them: --config configs/moving_mnist.yaml --config configs/baselines/conv_lstm.yaml).
"""

STAGE = """\
{what}

The options that matter most (every key of the config can be set the same way):
  --config configs/X.yaml              the experiment (repeat to layer configs)
  --run_dir DIR                        where the run lives: config, checkpoints/, figures/, wandb/
  --ckpt_path last|PATH                resume (fit) or the weights to use (validate/test/predict)
  --trainer.max_steps N                training length
  --trainer.accelerator gpu --trainer.devices N [--trainer.strategy ddp]
  --trainer.precision bf16-mixed       mixed precision
  --data.init_args.batch_size N        and the other data.init_args of the experiment's DataModule
  --data.init_args.test_sequences N    Moving MNIST: a shorter test (--trainer.limit_test_batches 1
                                       means 100 %; an int N > 1 means N batches of each test set)
  --model.init_args.optimizer.init_args.lr LR
  --model.init_args.optimizer_overrides '{{lr: 1e-4}}'   change the optimizer when resuming
  --checkpoint.every_n_train_steps N   how often last.ckpt (and the best) are written
  --trainer.logger false               no W&B (it is offline unless WANDB_MODE or WANDB_API_KEY is set)
  --print_config                       the full resolved config, then exit

Models: dfn.models.SteerableFilterModel, dfn.models.VideoPredictionModel (video and stereo).
DataModules: datamodules.SteerableDataModule, datamodules.BouncingMNISTDataModule,
datamodules.VideoHDF5DataModule, datamodules.StereoHDF5DataModule.
All of Lightning's options follow.
"""


class HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the descriptions above kept as written (line breaks)."""
