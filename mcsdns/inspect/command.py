"""``mcsdns zone`` and ``mcsdns explain``: load once, print, exit.

Exit 0 with the text on stdout; a source that cannot be read or a question
that makes no sense is one line on stderr and exit 1 (bad flags exit 2 before
we get here). Rejected objects go to stderr as the log lines ``serve`` writes.
"""

from __future__ import annotations

import sys

from ..config import Config
from ..observe import logs
from .explain import ExplainError, explain
from .load import LoadError, load
from .zonefile import zone_text

EXIT_OK, EXIT_FAILED = 0, 1


def inspect(config: Config, command: str, name: str | None, qtype: str | None, timeout: float) -> int:
    logs.setup("warning" if config.log_level == "info" else config.log_level, "plain")
    try:
        loaded = load(config, timeout)
        if command == "zone":
            sys.stdout.write(zone_text(loaded.store.snapshot))
        else:
            rejected = list(dict.fromkeys(loaded.rejected))
            sys.stdout.write("\n".join(explain(loaded.store, name or "", qtype or "A", rejected)) + "\n")
    except (LoadError, ExplainError) as error:
        print(f"mcsdns: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
