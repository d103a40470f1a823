"""Exceptions raised by a2f_core. Each carries a one-line message for the user."""

from __future__ import annotations


class A2FError(Exception):
    """Base class: a problem the user can fix, reported as one line."""


class AudioError(A2FError):
    """The audio input cannot be used (missing, empty, corrupt, NaN...)."""


class CheckpointError(A2FError):
    """A model checkpoint is missing, corrupt or from an incompatible version."""


class NoModelError(CheckpointError):
    """No trained model is installed and none was given."""


class OutputError(A2FError):
    """The result cannot be written where the user asked."""
