"""A local fake of Wix's account-level REST API, with fault injection and inspection.

    async with running_sandbox(SandboxConfig(listing_lag=0.2)) as running:
        ...  # call running.base_url like https://www.wixapis.com
        running.sandbox.snapshot()  # what happened

See wix-api.md for the wire contract it follows and SandboxConfig for its faults.
"""

from bulkops.sandbox.app import REQUEST_ID_HEADER, build_app
from bulkops.sandbox.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    DEFAULT_SUB_ACCOUNTS,
    Endpoint,
    SandboxConfig,
)
from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.roles import ROLES, Role
from bulkops.sandbox.server import RunningSandbox, running_sandbox, serve_forever, serve_sandbox

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_API_KEY",
    "DEFAULT_SUB_ACCOUNTS",
    "REQUEST_ID_HEADER",
    "ROLES",
    "Endpoint",
    "Role",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "build_app",
    "running_sandbox",
    "serve_forever",
    "serve_sandbox",
]
