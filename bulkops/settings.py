"""One frozen settings object, built by the CLI (the only reader of the environment)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from bulkops.errors import ConfigError
from bulkops.retry import ReadRetry

DEFAULT_BASE_URL = "https://www.wixapis.com"
DEFAULT_RATE = "200/min"

# What `run` does with a create_site row whose display name a site of the account already has:
# "fail" refuses the row before anything is sent; "adopt" takes that site as the row's result.
IfExists = Literal["adopt", "fail"]
IF_EXISTS_CHOICES: tuple[IfExists, ...] = ("fail", "adopt")
# The request budget's local pacer (bulkops.pacing): aiolimiter's or hand-written ("even").
PacerName = Literal["even", "aiolimiter"]
PACER_NAMES: tuple[PacerName, ...] = ("even", "aiolimiter")

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class Rate:
    """A request budget: `count` requests per `period` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        for unit, seconds in (("min", 60.0), ("s", 1.0), ("hour", 3600.0)):
            if self.period == seconds:
                return f"{plain_number(self.count)}/{unit}"
        return f"{plain_number(self.count)}/{plain_number(self.period)}s"


def plain_number(value: float) -> str:
    """A number as it is typed: 1000000 (not 1e+06, as `:g` writes it), 0.5, 2.25."""
    text = f"{value:f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def parse_rate(text: str) -> Rate:
    """Parse `200/min`, `5/s`, `1000/hour`. Raises ConfigError on anything else."""
    match = _RATE_RE.match(text.lower())
    if not match or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"invalid rate {text!r}: expected e.g. 200/min or 5/s")
    return Rate(float(match.group(1)), _UNITS[match.group(2)])


@dataclass(frozen=True)
class Settings:
    db_url: str
    base_url: str = DEFAULT_BASE_URL
    # repr=False: the key must never reach a log line or an exception message.
    api_key: str = field(default="", repr=False)
    account_id: str = ""
    rate: Rate = field(default_factory=lambda: parse_rate(DEFAULT_RATE))
    concurrency: int = 8
    max_attempts: int = 8
    timeout: float = 30.0
    settle: float = 15.0
    backoff_base: float = 1.0
    breaker_window: int = 20
    breaker_ratio: float = 0.8
    # Seconds a job's lease lasts without a heartbeat: how long a SIGKILLed run keeps others
    # out. Heartbeats renew it every third of that.
    lease_seconds: float = 30.0
    deadline: float | None = None  # unix seconds (--finish-by): no operation starts after it
    outage_limit: float = 900.0  # seconds Wix may stay unreachable before the run stops
    if_exists: IfExists = "fail"  # a create whose site name exists in the account (--if-exists)
    pacer: PacerName = "aiolimiter"  # the budget's local pacer (hidden --pacer, for its benchmark)

    @property
    def reads(self) -> ReadRetry:
        """How the checks before the first write retry their reads."""
        return ReadRetry.allowing(self.max_attempts, self.backoff_base)
