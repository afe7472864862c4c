"""``python -m core.train``: the training command line (see :func:`core.cli.train_main`)."""

from core.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
