"""The interactive explorers used by the notebooks, one module per lesson."""

from course_lib.widgets.core import Control, Explorer

__all__ = ["Control", "Explorer"]
