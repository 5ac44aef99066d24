"""The credentials a real Wix run needs, checked before anything is read, stored or sent.

Light on imports on purpose: `run` checks them before the first pass over its file, and the
engine's modules (SQLAlchemy, aiohttp: about 30 MB) are imported only after that pass, so
they do not add to its peak memory.
"""

from __future__ import annotations

from bulkops.errors import ConfigError
from bulkops.jobrows import is_guid
from bulkops.settings import Settings


def require_credentials(settings: Settings) -> None:
    """Raises ConfigError naming the variable that is missing or malformed (a real Wix run
    needs both): a key with a control character (Wix refuses it as a header), an account id
    that is not a GUID."""
    if not settings.api_key and not settings.account_id:
        raise ConfigError("WIX_API_KEY and WIX_ACCOUNT_ID are not set: export your Wix "
                          "account API key and account id (or use --sandbox for a local demo)")
    if not settings.api_key:
        raise ConfigError("WIX_API_KEY is not set: export your Wix account API key "
                          "(or use --sandbox for a local demo)")
    if not settings.account_id:
        require_account_id(settings.account_id)
    if any(not char.isprintable() for char in settings.api_key):
        # Never shown: the key is a secret, even a broken one.
        raise ConfigError("WIX_API_KEY contains a character no key has (a line break, a "
                          "no-break space or another invisible one): set it again from the "
                          "key as Wix shows it")
    require_account_id(settings.account_id)


def require_account_id(account_id: str, *, why: str = "") -> None:
    """Raises ConfigError when `account_id` is missing (`why`: what it is needed for, shown
    after) or is not a GUID."""
    if not account_id:
        raise ConfigError("WIX_ACCOUNT_ID is not set: pass --account-id or export WIX_ACCOUNT_ID"
                          + (f" ({why})" if why else ""))
    if not is_guid(account_id):
        raise ConfigError(f"WIX_ACCOUNT_ID / --account-id {account_id!r} is not a Wix "
                          "account id (a GUID like 0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f)")
