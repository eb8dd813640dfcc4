"""Microscopy branch (paper Section 4.4, BBBC021): raw plate images -> illumination correction ->
single-cell crops -> ResNet50 embeddings -> PCA -> wells as bags -> MoA classification."""
