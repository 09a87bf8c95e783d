"""The one error type users see.

Anything wrong with what the user gave us (a spec file, a model file, an option) is raised as an
:class:`AccelError` whose message is a single line naming where the problem is (file, layer index
and name, field) and the offending value. The CLI prints it to stderr and exits with status 2; it
never shows a traceback for these.
"""


#: The longest message an :class:`AccelError` carries (characters).
MAX_MESSAGE = 1000


class AccelError(Exception):
    """A user-facing error with a one-line message."""

    def __init__(self, message: str):
        # Keep the contract of one line even if a caller interpolates a multi-line value.
        # A hostile file must not make the message huge either: cut it (values quoted in
        # messages are shortened with reprlib already; this is the last line of defence).
        text = " ".join(str(message)[:MAX_MESSAGE * 4].split())
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE - 5] + " ..."
        super().__init__(text)
