"""Camelyon16 raw whole-slide images (the SMMILe study): tiling with tissue masks and lesion labels,
patch features, and a generated demo in the official release's layout. Kept apart from the DSMIL feature
archive path of Table 3 (the modules beside this package)."""
