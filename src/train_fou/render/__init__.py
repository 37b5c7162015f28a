"""Procedural rendering shared by the training data generator and the simulator (numpy + OpenCV, no torch)."""
