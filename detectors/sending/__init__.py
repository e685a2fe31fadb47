"""Sending-behaviour detectors (detections.md §G)."""
