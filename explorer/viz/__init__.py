"""Pictures of embedding spaces: 2-D projections, hidden-state paths, scatter plots.

``project`` is pure numpy (PCA, custom axes, optional UMAP, stated sampling);
``select`` picks the points of ``explorer map`` from a store; ``path`` runs a prompt
through a model (torch); ``scatter`` draws PNGs (matplotlib) and terminal scatters;
``compare`` asks one question of several models (``explorer compare``).
"""
