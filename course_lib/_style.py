"""The classroom switch (set by ``viz.use_course_style``), read by the figures and by the
HTML of exercise verdicts and doctor reports; importing it does not import matplotlib."""

classroom = False


def html_font_size() -> str:
    """The CSS font size of the course's HTML output: larger in the classroom style."""
    return "20px" if classroom else "15px"
