"""Scoring many files: resumable JSON-lines runs, and Ray Data for a cluster."""
