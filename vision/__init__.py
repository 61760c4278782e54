"""Frames in, observations out: detection, pose, part states, hands and privacy."""
