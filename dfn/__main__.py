"""``python -m dfn fit|validate|test|predict --config configs/X.yaml`` (see :mod:`dfn.cli`)."""
from dfn.cli import main

if __name__ == "__main__":
    main()
