"""Managed runtimes: what runs inside an execution environment and with which environment.

- :mod:`lambdalet.runtimes.python` finds host Python installs and installs the
  Runtime Interface Client (``awslambdaric``) into ``<data>/runtimes/python3.X``.
- :mod:`lambdalet.runtimes.provided` resolves the ``bootstrap`` of ``provided*`` runtimes.
- :mod:`lambdalet.runtimes.envvars` builds the process environments (pure functions).
"""
