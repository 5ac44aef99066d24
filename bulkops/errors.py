"""The project's exceptions. Library errors are translated at the edge (`raise ... from exc`)."""

from __future__ import annotations

from dataclasses import dataclass


class BulkOpsError(Exception):
    """Base of every error bulkops raises on purpose."""


class ConfigError(BulkOpsError):
    """Bad options, environment or credentials: exit 2, nothing sent."""


@dataclass(frozen=True)
class RowError:
    """One problem in a job file. `line`: CSV/JSONL physical line, JSON element index from 1."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


class JobFileError(BulkOpsError):
    """The job file is invalid. Carries every problem found, in file order."""

    def __init__(self, path: str, errors: list[RowError]) -> None:
        self.path = path
        self.errors = errors
        super().__init__(f"{path}: {len(errors)} error(s) in job file")


class StoreError(BulkOpsError):
    """The checkpoint database could not be opened, migrated or written."""


class StoreBusy(StoreError):
    """Another process held the database's write lock for longer than this one may wait
    (`--lock-wait`): nothing was done. Not a refusal at once, so not worth trying again."""


class JobBusy(BulkOpsError):
    """Another live process holds the job's lease: exit 4, nothing was done."""


class WixError(BulkOpsError):
    """A call to Wix did not succeed. Never carries the API key."""


class WixApiError(WixError):
    """Wix answered with a non-200 status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"HTTP {status} {code or ''}: {message}{rid}".replace("  ", " "))


class WixConnectionError(WixError):
    """No answer. `sent` is False only when the request certainly never left (connect failed)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        self.sent = sent
        super().__init__(message)


class WixTimeout(WixConnectionError):
    """The request left but no answer came in time: its effect may or may not have happened."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=True)


class SendStopped(BulkOpsError):
    """A stop was asked for before this request left: it was not sent, nothing happened."""
