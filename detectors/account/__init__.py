"""Account-state detectors (detections.md §I)."""
