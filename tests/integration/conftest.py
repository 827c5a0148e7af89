from tests.integration.harness import lam, server

__all__ = ["lam", "server"]
