"""Pictures of embedding spaces: 2-D projections, hidden-state paths, scatter plots.

``project`` is pure numpy (PCA, custom axes, optional UMAP, stated sampling);
``select`` turns chosen tokens into the points of ``explorer map``; ``path`` places a
prompt's hidden states among landmarks; ``scatter`` draws PNGs (matplotlib) and terminal
scatters; ``comparison`` holds the items and outcomes of ``explorer compare``. The
services in :mod:`explorer.services.maps` and :mod:`explorer.services.compare` read the
store and run the models for them.
"""
