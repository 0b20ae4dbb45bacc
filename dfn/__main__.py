"""``python -m dfn fit|validate|test|predict --config configs/X.yaml`` (see :mod:`dfn.harness.cli`) and
``python -m dfn pack SOURCE... OUTPUT.h5`` (see :mod:`dfn.footage.pack`), ``python -m dfn scenes`` (:mod:`dfn.footage.scenes`)."""
from dfn.harness.cpu_share import spin_briefly

spin_briefly()          # before torch is imported (by dfn.harness.cli)

from dfn.harness.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
