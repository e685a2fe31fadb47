"""Mailbox delegation detectors (detections.md §F)."""
