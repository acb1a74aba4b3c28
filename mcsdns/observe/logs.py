"""Logging setup: plain lines for a terminal, or one JSON object a line for a log
pipeline (``--log-format json``).

A JSON line holds ``time`` (UTC, RFC 3339, milliseconds), ``level``, ``logger``
and ``message``, then whatever the call passed as ``extra`` (``event``,
``addresses``, ``serial``...), and ``exception`` with the traceback when there
is one. Nothing is logged per query unless ``--log-level debug``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup(level: str = "info", form: str = "plain", stream=None) -> None:
    """Route every logger to ``stream`` (stderr) in the chosen format; replaces earlier setup."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
