"""LSTS: Learnable Spatio-Temporal Sampling for efficient video object detection.

A PyTorch reproduction of Jiang et al., "Learning Where to Focus for Efficient Video
Object Detection" (ECCV 2020). Data flows one way:
frames -> backbone (low/high) -> LSTS alignment -> fusion (SRFU/DFA) -> head -> detections
-> evaluator.
"""

__version__ = "0.1.0"
