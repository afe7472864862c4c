"""``python -m core.analyse``: the text analysis command line (see :func:`core.analyse_cli.main`)."""

from core.analyse_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
