"""Authentication-method detectors (detections.md §C)."""
