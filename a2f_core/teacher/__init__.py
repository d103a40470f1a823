"""Phoneme-timed teacher: speech with known phone timings -> ARKit curves (synthetic supervision)."""

from .coarticulation import TeacherConfig, aperture, phones_to_curves, pose_table
from .inventory import CLASSES, Phone

__all__ = ["TeacherConfig", "aperture", "phones_to_curves", "pose_table", "CLASSES", "Phone"]
