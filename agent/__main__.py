"""``python -m agent ...`` runs the ``inferwatch`` command line."""

from agent.cli import main

if __name__ == "__main__":
    main()
