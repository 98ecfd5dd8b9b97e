"""flashc: a build compiler and packager for serverless @remote functions."""

__version__ = "0.1.0"
