"""ARC-AGI, the task's parts: the token layout and augmentations (grid.py, augment.py), the sources it reads
(sources.py), the voting evaluator (evaluator.py) and the pictures (render.py); the builder is
dataset/build_arc_dataset.py, at the path the reference's command lines use.
"""
