"""Directory-role detectors (detections.md §D)."""
