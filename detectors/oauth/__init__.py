"""OAuth consent detectors (detections.md §E)."""
