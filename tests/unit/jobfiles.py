"""Shared by the job-file tests: write a file, and collect the problems validation reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkops.errors import JobFileError
from bulkops.jobfile import validate

Problem = tuple[int, str | None, str]


def write_file(tmp_path: Path, content: str | bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def problems(path: Path) -> list[Problem]:
    """Every (line, column, reason) that validating `path` reports; it must be refused."""
    with pytest.raises(JobFileError) as info:
        validate(path)
    return [(error.line, error.column, error.reason) for error in info.value.errors]
