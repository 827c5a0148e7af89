"""lambdalet's benchmark suite: ``.venv/bin/python -m bench [--tiny]`` (see bench/run.py)."""
