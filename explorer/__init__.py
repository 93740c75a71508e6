"""Explorer: look inside the embedding spaces of language models.

Layers (data flows one way): ``models`` (torch) exports into ``store`` (FAISS files +
DuckDB catalog); ``query`` is pure numpy; ``engine`` is the façade the front ends
(``cli``) call.
"""

__version__ = "0.1.0"
