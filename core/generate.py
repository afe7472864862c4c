"""``python -m core.generate``: the generation command line (see :func:`core.cli.generate_main`).

The sampling engine itself lives in :mod:`core.sampling`.
"""

if __name__ == "__main__":
    from core.cli import generate_main

    raise SystemExit(generate_main())
