"""Synthetic tabletop data: scene rendering, COCO writing/reading, training batches."""
