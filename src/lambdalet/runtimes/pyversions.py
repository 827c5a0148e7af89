"""The versions lambdalet pins for Python runtimes: the Runtime Interface Client
(``awslambdaric``) and the SDK (boto3, botocore), per Python minor version."""

from __future__ import annotations

#: The Runtime Interface Client version installed for Python 3.10 and newer.
AWSLAMBDARIC_VERSION = "4.2.2"
#: Older minor versions cannot run the current client; these are the newest that install.
_OLDER_AWSLAMBDARIC = {(3, 8): "2.2.1", (3, 9): "4.0.4"}

#: boto3 / botocore installed as the runtime's own SDK (``/var/lang/lib/python3.X/
#: site-packages``, as Lambda's 3.11+ runtimes; 3.8-3.10 had it in ``/var/runtime``).  AWS
#: publishes no fixed versions for current runtimes (they vary by runtime version and
#: region); lambdalet pins one recent release, and for older minors the newest that
#: supports them.  A boto3 in the function's package or a layer shadows it, as on Lambda.
SDK_VERSION = "1.43.11"
_OLDER_SDK = {(3, 8): "1.37.38", (3, 9): "1.42.97"}


def awslambdaric_version(minor: tuple[int, int]) -> str:
    """The pinned ``awslambdaric`` release for a Python minor version."""
    return _OLDER_AWSLAMBDARIC.get(minor, AWSLAMBDARIC_VERSION)


def sdk_version(minor: tuple[int, int]) -> str:
    """The pinned boto3 (and botocore, same number) release for a Python minor version."""
    return _OLDER_SDK.get(minor, SDK_VERSION)


def sdk_packages(minor: tuple[int, int]) -> list[str]:
    """The runtime's own SDK, as pip requirements."""
    version = sdk_version(minor)
    return [f"boto3=={version}", f"botocore=={version}"]
