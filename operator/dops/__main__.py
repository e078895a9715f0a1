"""`python -m dops …` runs the dops CLI (the worker container's entrypoint on the embedded control plane)."""

from dops.cli.app import main

if __name__ == "__main__":
    main()
