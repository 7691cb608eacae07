"""Each lesson's own helpers (its batch, experiments and figures), one module per lesson.

``course_lib.lessons.lessonNN`` goes with ``notebooks/NN_*.ipynb``; the lesson's explorer is in
``course_lib.widgets.lessonNN`` and its exercises in ``course_lib.exercises.lessonNN``. The
modules beside this package (masks, attention, models, training, decoding, ...) are the
reusable library.
"""
