"""The learner's own copies of the lessons, so that nothing a learner does reaches notebooks/.

`make lab` opens the course in my-notebooks/ (git-ignored): on first use, and whenever the
course gains a lesson, each lesson is copied there from notebooks/. Nothing is ever copied
over a learner's copy; if the original lesson changed since the copy was made (after a
`git pull`, say), `make lab` says so. `make reset LESSON=05` puts lesson 05 back as it was
(`make reset LESSON=all`: every lesson); the copy it replaces is kept in
my-notebooks/.backup/, so no work is lost.

Usage: python tools/learner_copy.py sync | reset LESSON
"""

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORIGINALS = ROOT / "notebooks"
LEARNER = ROOT / "my-notebooks"
RECORD = ".originals.json"  # the hash of each original at the time it was copied


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lessons(originals: Path) -> list[Path]:
    return sorted(originals.glob("*.ipynb"))


def _record(learner: Path) -> dict[str, str]:
    path = learner / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def _copy(original: Path, learner: Path, record: dict[str, str]) -> None:
    shutil.copyfile(original, learner / original.name)
    record[original.name] = _digest(original)


def sync(originals: Path = ORIGINALS, learner: Path = LEARNER) -> list[str]:
    """Copy every lesson the learner has no copy of yet; return one notice per lesson whose
    original changed since it was copied (the learner's copy is left as it is)."""
    learner.mkdir(exist_ok=True)
    record, notices = _record(learner), []
    for original in _lessons(originals):
        if not (learner / original.name).exists():
            _copy(original, learner, record)
        elif record.get(original.name) != _digest(original):
            notices.append(f"{original.name} has changed since your copy was made: "
                           f"`make reset LESSON={original.name[:2]}` gets the new version "
                           f"(your copy is kept in {learner.name}/.backup/)")
    (learner / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return notices


def reset(lesson: str, originals: Path = ORIGINALS, learner: Path = LEARNER) -> list[Path]:
    """Put lesson `lesson` ("05", "05_training" or "all") back as the course ships it; the
    replaced copies go to <learner>/.backup/<time>/. Returns the lessons reset."""
    lessons = _lessons(originals)
    if lesson != "all":
        lessons = [p for p in lessons if p.stem == lesson or p.stem.split("_")[0] == lesson]
        if not lessons:
            names = ", ".join(p.stem.split("_")[0] for p in _lessons(originals))
            raise ValueError(f"LESSON: expected a lesson number ({names}) or 'all', "
                             f"got {lesson!r}")
    learner.mkdir(exist_ok=True)
    backup = learner / ".backup" / time.strftime("%Y%m%d-%H%M%S")
    record = _record(learner)
    for original in lessons:
        copy = learner / original.name
        if copy.exists():
            backup.mkdir(parents=True, exist_ok=True)
            shutil.move(copy, backup / original.name)
        _copy(original, learner, record)
    (learner / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return lessons


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["sync", "reset"])
    parser.add_argument("lesson", nargs="?", help="with reset: a lesson number, or all")
    args = parser.parse_args(argv)
    if args.action == "sync":
        for notice in sync():
            print(notice)
        return 0
    if not args.lesson:
        print("reset: say which lesson, e.g. `make reset LESSON=05`, or LESSON=all",
              file=sys.stderr)
        return 2
    try:
        for original in reset(args.lesson):
            print(f"{LEARNER.name}/{original.name}: reset to the original")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
