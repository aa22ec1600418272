"""The label of a position no loss or metric scores, shared by the data loader that writes it and the
losses and metrics that skip it (PyTorch's own `ignore_index` default)."""

IGNORE_LABEL_ID = -100
