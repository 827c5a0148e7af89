from tests.integration.harness import lam, server, short_limits_server

__all__ = ["lam", "server", "short_limits_server"]
