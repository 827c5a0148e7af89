"""lambdalet: a self-hosted, Docker-free AWS Lambda execution environment."""

__version__ = "0.1.0"
