"""The README's TestBroker examples, run as they are written (so they stay true)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from readme_support import readme_code_blocks

from consumers.email.smtp_sink import SmtpSink


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    """A local SMTP sink; addresses with +flaky are answered 451 once."""
    with SmtpSink(0, tmp_path / "mailbox.db") as sink:
        monkeypatch.setenv("EMAIL_SMTP_HOST", sink.host)
        monkeypatch.setenv("EMAIL_SMTP_PORT", str(sink.port))
        yield sink


# The first block defines the unit tests; they become this module's tests.
exec(compile(readme_code_blocks()[0], "README.md (TestBroker example)", "exec"), globals())
