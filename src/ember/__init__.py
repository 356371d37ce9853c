"""ember: an always-on production profiler for Python web services.

Public surface: :func:`start`, :func:`stop`, :func:`profile`, :class:`Sampler`,
:class:`Profile`, :func:`load`, :func:`dump`, :func:`implementation`.
"""

from ember._impl import implementation
from ember.api import current, profile, start, stop
from ember.config import Config
from ember.errors import (
    ConfigError,
    EmberError,
    FormatError,
    ProfilerStateError,
    ValueRangeError,
)
from ember.formats import dump, load
from ember.profile import Frame, Labels, Metadata, Profile, Values, make_labels, merge
from ember.sampler import Sampler

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "EmberError",
    "FormatError",
    "Frame",
    "Labels",
    "Metadata",
    "Profile",
    "ProfilerStateError",
    "Sampler",
    "ValueRangeError",
    "Values",
    "__version__",
    "current",
    "dump",
    "implementation",
    "load",
    "make_labels",
    "merge",
    "profile",
    "start",
    "stop",
]
