"""Query meaning, in pure numpy: parsing, word resolution, analogy and neighbour search."""
