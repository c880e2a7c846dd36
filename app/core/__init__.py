"""Hearth's core: everything but the window (never imports Qt)."""

import logging

# Hearth's loggers ("hearth.*") write to the log file once app.core.logs.setup() has run; until
# then (tests, benches, a library user) they say nothing — not even their warnings, which logging's
# last-resort handler would otherwise print to stderr (llama.cpp's load warnings, for one).
logging.getLogger("hearth").addHandler(logging.NullHandler())
