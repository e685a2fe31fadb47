"""Contact-information detectors (detections.md §H)."""
