"""course_lib: the shared package of the "Masking in Transformers" course.

Mask convention everywhere in this package (the ``nn.MultiheadAttention`` one): a bool
mask is True where attention is BLOCKED; a float mask is ADDED to the scores.
"""

__version__ = "0.1.0"
