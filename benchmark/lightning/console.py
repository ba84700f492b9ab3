"""A quiet console: each event on one line, third-party warnings once; the log file keeps all.

Under Hydra every job logs to the console and to ``<run dir>/<job>.log`` through the
root logger. Lightning also installs console handlers of its own, so each of its INFO
lines printed twice, it advertises another product at every fit, and library
deprecation warnings repeated for every batch of a sweep. :func:`quiet_console` routes
Lightning through the root handlers only, shows each of its lines once (every stage's
trainer announces the same devices), drops the advertisement, and sends Python
warnings through logging, where the console shows each distinct warning once (its first
line) and the file every occurrence.
"""

from __future__ import annotations

import logging

ADVERTISEMENTS = ("litlogger", "💡 Tip:")  # Lightning's product tips: not an event of the run


class ConsoleFilter(logging.Filter):
    """Drops advertisements, every repeat of a warning already shown, and every repeat of a
    Lightning line already shown (each stage's trainer announces the same devices)."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()
        self.lightning_seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(ad in message for ad in ADVERTISEMENTS):
            return False
        if record.name.startswith("lightning"):
            if message in self.lightning_seen:
                return False
            self.lightning_seen.add(message)
        if record.name == "py.warnings":
            first = message.strip().splitlines()[0] if message.strip() else message
            if first in self.seen:
                return False
            self.seen.add(first)
            record.msg, record.args = first, None  # the console gets the gist; the file has the rest
        return True


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def quiet_console() -> None:
    """Apply the rules above to the current root handlers (call once logging is configured)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()  # the root's console and file handlers print it, once
        logger.propagate = True
    console_filter = ConsoleFilter()
    for handler in logging.getLogger().handlers:
        if _is_console(handler) and not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(console_filter)
    logging.captureWarnings(True)
