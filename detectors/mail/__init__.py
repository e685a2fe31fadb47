"""Mailbox forwarding and inbox-rule detectors (detections.md §A, §B)."""
