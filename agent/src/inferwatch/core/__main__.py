"""``python -m inferwatch.core ...`` runs the ``inferwatch`` command line."""

from inferwatch.core.cli import main

if __name__ == "__main__":
    main()
