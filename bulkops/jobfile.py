"""Job files → validated operation specs, every problem of the file reported at once.

Two passes over the file. The first validates everything and keeps only what cross-row checks
need (keys, references, site names), so a million-row CSV validates in bounded memory. The second,
run by whoever stores the job, reads the file again and yields the specs in input order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from bulkops.errors import JobFileError, RowError
from bulkops.jobgraph import RefGraph
from bulkops.jobreaders import CsvHeader, JobFormat, RawRow, ReadItem, job_format, read_rows
from bulkops.jobrows import ACTION_NAMES, check_row, missing_reason, show
from bulkops.model import Action, JobSource, OpSpec

__all__ = ["JobFormat", "load_job", "validate"]

# (size, modification time): the second pass refuses a file that changed after validation.
_Stamp = tuple[int, int]


def validate(path: str | Path) -> JobSource:
    """Check the whole file; raises JobFileError listing every problem in line order."""
    return _first_pass(Path(path))[0]


def load_job(path: str | Path) -> tuple[JobSource, Callable[[], Iterator[OpSpec]]]:
    """Validate the whole file (streaming) and return its JobSource plus a factory that re-reads
    the file streaming and yields the validated OpSpecs in input order.

    Raises JobFileError(path, errors) listing every problem (line, column, reason) in line
    order. The factory's iterator raises JobFileError if the file changed in between.
    """
    file = Path(path)
    source, stamp = _first_pass(file)

    def specs() -> Iterator[OpSpec]:
        return _second_pass(file, JobFormat(source.format), stamp, source.total)

    return source, specs


def _first_pass(file: Path) -> tuple[JobSource, _Stamp]:
    fmt = job_format(file)
    if fmt is None:
        reason = f"unknown job file type {show(file.suffix)}: use .csv, .json or .jsonl"
        raise JobFileError(str(file), [RowError(1, None, reason)])
    try:
        stamp = _stamp(file)
        with file.open("rb") as raw:
            # Same content, same job: running the file again continues the stored job.
            job_id = hashlib.file_digest(raw, "sha256").hexdigest()[:16]
        checks = _Checks()
        for item in read_rows(file, fmt):
            checks.take(item)
    except OSError as exc:
        raise _unreadable(file, exc) from None
    errors = checks.finish()
    if errors:
        raise JobFileError(str(file), errors)
    return JobSource(job_id=job_id, path=str(file), format=fmt.value, total=checks.total), stamp


def _second_pass(file: Path, fmt: JobFormat, stamp: _Stamp, total: int) -> Iterator[OpSpec]:
    changed = JobFileError(str(file), [RowError(
        1, None, "the file changed after it was validated; run the command again")])
    try:
        if _stamp(file) != stamp:
            raise changed
        count = 0
        for item in read_rows(file, fmt):
            if isinstance(item, RawRow):
                spec = check_row(item.line, item.fields, item.defaults).spec
                if spec is None:
                    raise changed
                count += 1
                yield spec
        if count != total or _stamp(file) != stamp:
            raise changed
    except OSError as exc:
        raise _unreadable(file, exc) from None


def _stamp(file: Path) -> _Stamp:
    status = file.stat()
    return status.st_size, status.st_mtime_ns


def _unreadable(file: Path, exc: OSError) -> JobFileError:
    return JobFileError(str(file), [RowError(1, None, f"cannot read the file: {exc.strerror}")])


class _Checks:
    """The first pass: per-row problems as they come, cross-row ones at the end."""

    def __init__(self) -> None:
        self.total = 0
        self._errors: list[RowError] = []
        self._graph = RefGraph()
        self._site_names: dict[str, int] = {}  # casefolded name -> first line
        self._header: CsvHeader | None = None
        # Required columns a CSV header lacks: column -> (first line needing it, its action).
        self._not_in_header: dict[str, tuple[int, Action | None]] = {}

    def take(self, item: ReadItem) -> None:
        if isinstance(item, RowError):
            self._errors.append(item)
        elif isinstance(item, CsvHeader):
            self._header = item
        else:
            self._row(item)

    def finish(self) -> list[RowError]:
        errors = self._errors + self._graph.errors() + self._header_errors()
        if self.total == 0:
            errors.append(RowError(1, None, "no operations: the file has no rows"))
        errors.sort(key=lambda error: error.line)  # stable: a row's problems keep their order
        return errors

    def _row(self, row: RawRow) -> None:
        self.total += 1
        result = check_row(row.line, row.fields, row.defaults)
        self._errors += result.errors
        for column in result.missing:
            if self._header is not None and column not in self._header.columns:
                self._not_in_header.setdefault(column, (row.line, result.action))
            else:
                self._errors.append(RowError(row.line, column, missing_reason(column,
                                                                              result.action)))
        if result.key is not None:
            duplicate = self._graph.add_row(
                row.line, result.key, result.action, result.spec, derived=result.derived_key
            )
            if duplicate is not None:
                self._errors.append(duplicate)
        if result.spec is not None and result.spec.site_name is not None:
            self._check_site_name(row.line, result.spec.site_name)

    def _check_site_name(self, line: int, name: str) -> None:
        earlier = self._site_names.setdefault(name.casefold(), line)
        if earlier != line:
            self._errors.append(RowError(
                line, "site_name", f"duplicate site name {show(name)}: duplicate of line {earlier}"
            ))

    def _header_errors(self) -> list[RowError]:
        if self._header is None:
            return []
        errors: list[RowError] = []
        for column, (line, action) in self._not_in_header.items():
            if action is None:
                reason = f"the header has no action column: every row needs one ({ACTION_NAMES})"
            else:
                reason = (f"the header has no {column} column, which {action.value} rows need "
                          f"(first at line {line})")
            errors.append(RowError(self._header.line, column, reason))
        return errors
