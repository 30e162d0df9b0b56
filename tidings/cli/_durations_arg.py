"""Let ``--from -2h`` parse: argparse takes ``-2h`` for an option unless told otherwise."""

from __future__ import annotations

import argparse
import re

#: Negative numbers and durations before now (``-2h``, ``-30m``, ``-1.5``) are values.
_NEGATIVE_VALUE = re.compile(r"^-\d+(\.\d+)?(ms|s|m|h|d)?$")


def accept_negative_durations(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` read ``-2h`` as an option's value (it defines no such options)."""
    # argparse has no public hook for this; the matcher is what it consults.
    parser._negative_number_matcher = _NEGATIVE_VALUE
