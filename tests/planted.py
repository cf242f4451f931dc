"""A planted pickle: what a hostile file in a cache directory or a checkpoint would hold."""

from __future__ import annotations

import os


class Payload:
    """Unpickling this calls ``os.system`` to create ``marker``: if the file exists afterwards, code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
