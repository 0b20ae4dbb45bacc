"""``python -m dfn fit|validate|test|predict --config configs/X.yaml`` (see :mod:`dfn.cli`) and
``python -m dfn pack SOURCE... OUTPUT.h5`` (see :mod:`dfn.pack`)."""
from dfn.cli import main

if __name__ == "__main__":
    main()
