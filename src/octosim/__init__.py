"""octosim: Orchestrated AI Workflows on scale-out spatial architectures."""

__version__ = "0.1.0"
