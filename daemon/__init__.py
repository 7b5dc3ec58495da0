"""officehours: Zoom PMI links in Office Hours events, and a locked room before each session."""

__version__ = "0.1.0"
