"""Feature streams of the dual-stream model: log-mel (mouth) and eGeMAPS (emotion)."""

from .mel import MelConfig, frame_center, log_mel
from .emotion import EmotionConfig, EmotionExtractor, hop_times, align_to_frames

__all__ = ["MelConfig", "frame_center", "log_mel", "EmotionConfig", "EmotionExtractor", "hop_times", "align_to_frames"]
