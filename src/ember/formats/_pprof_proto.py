"""Field numbers of profile.proto (``perftools.profiles``), pprof's units of time, and
the error for protobuf that is well-formed but not a valid profile."""

from __future__ import annotations


class Invalid(ValueError):
    """Well-formed protobuf that is not a valid profile."""


# Profile
SAMPLE_TYPE, SAMPLE, MAPPING, LOCATION, FUNCTION = 1, 2, 3, 4, 5
STRING_TABLE, DROP_FRAMES, KEEP_FRAMES, TIME, DURATION = 6, 7, 8, 9, 10
PERIOD_TYPE, PERIOD, COMMENT, DEFAULT_SAMPLE_TYPE, DOC_URL = 11, 12, 13, 14, 15
# ValueType, Sample, Label
VT_TYPE, VT_UNIT = 1, 2
S_LOCATION_ID, S_VALUE, S_LABEL = 1, 2, 3
L_KEY, L_STR, L_NUM, L_NUM_UNIT = 1, 2, 3, 4
# Mapping, Location, Line, Function
M_ID, M_FILENAME = 1, 5
LOC_ID, LOC_MAPPING_ID, LOC_ADDRESS, LOC_LINE = 1, 2, 3, 4
LINE_FUNCTION_ID, LINE_LINE = 1, 2
F_ID, F_NAME, F_SYSTEM_NAME, F_FILENAME, F_START_LINE = 1, 2, 3, 4, 5

NS_PER_UNIT = {
    "nanoseconds": 1, "nanosecond": 1, "ns": 1,
    "microseconds": 1_000, "microsecond": 1_000, "us": 1_000,
    "milliseconds": 1_000_000, "millisecond": 1_000_000, "ms": 1_000_000,
    "seconds": 1_000_000_000, "second": 1_000_000_000, "s": 1_000_000_000,
}
COMMENT_PREFIX = "ember."
"""ember's metadata travels in comments ``ember.KEY=VALUE``."""
