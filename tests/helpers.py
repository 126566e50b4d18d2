"""Small test doubles shared by the test modules."""


class RecordingTally:
    """Stands in for the ``RejectionTally`` actor handle: ``tally.add.remote(reason, message)`` records."""

    def __init__(self):
        self.seen: list[tuple[str, str]] = []
        self.add = self

    def remote(self, reason: str, message: str) -> None:
        self.seen.append((reason, message))
