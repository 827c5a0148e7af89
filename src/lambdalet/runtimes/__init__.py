"""Managed runtimes: what runs inside an execution environment and with which environment.

- :mod:`lambdalet.runtimes.python` finds host Python installs and installs the
  Runtime Interface Client (``awslambdaric``) into ``<data>/runtimes/python3.X`` and the
  language layer (the runtime's boto3, no host site-packages) into ``python3.X.lang``.
- :mod:`lambdalet.runtimes.catalog` lists every family's runtimes (``describe``) and
  installs them (``install``), for ``lambdalet runtimes`` and ``lambdalet doctor``.
- :mod:`lambdalet.runtimes.provided` resolves the ``bootstrap`` of ``provided*`` runtimes.
- :mod:`lambdalet.runtimes.envvars` builds the process environments (pure functions).
"""
