"""Data: synthetic H&E generator, scribbles, input checks, crop sampling and augmentation."""
