"""``python -m dfn fit|validate|test|predict --config configs/X.yaml`` (see :mod:`dfn.cli`) and
``python -m dfn pack SOURCE... OUTPUT.h5`` (see :mod:`dfn.pack`), ``python -m dfn scenes`` (:mod:`datamodules.scenes`)."""
from dfn.cpu_share import spin_briefly

spin_briefly()          # before torch is imported (by dfn.cli)

from dfn.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
