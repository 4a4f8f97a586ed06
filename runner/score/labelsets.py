"""Label-error sets of the ImageNet validation set, from cleanlab's Mechanical Turk study.

The study (imagenet_mturk.json, Northcutt et al. 2021) re-labelled 5,440 suspect images: five
workers each voted that the original label is right (`given`), the suggested one is
(`guessed`), `neither` or `both`. Entries are matched to images by the file name in `url`
(ILSVRC2012_val_<n>.JPEG; `id` is the same file number, not a row index).

A label set says which images the figures are over and which labels count. Pure: numpy in,
numpy out; images are indexed by ILSVRC file number - 1 (0..49,999). docs/accuracy.md defines
every set.

The correct sets, for a consensus level c in 3..5 (all 5,440 entries):
- corrected-c: all images; the label becomes the guessed one where guessed >= c.
- cleaned-c: corrected-c minus the images where neither label got c votes.
- consensus-c: only the images where guessed >= c; original and corrected labels.
- removed-c: all images minus every flagged one (given < c and guessed < c, or guessed >= c);
  original labels only.

`published_set` reproduces the ten tables of the 2019 benchmark (--as-published) with their
quirks, as issue 13 derived them: 39 entries whose labels are class names with an apostrophe
are ignored (APOS), "crane" entries (CRANE) are dropped from some sets, and
test_noise_removed_c drops the images at the *list positions* of the flagged entries rather
than the flagged images themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import UserError

VALIDATION_IMAGES = 50_000
LEVELS = (3, 4, 5)
KINDS = ("corrected", "cleaned", "consensus", "removed")
CORRECT_SETS = tuple(f"{kind}-{level}" for kind in KINDS for level in LEVELS)
PUBLISHED_SETS = (
    *(f"cleaned_and_corrected_{level}" for level in LEVELS),
    *(f"consensus{level}" for level in LEVELS),
    "consensus5_464",
    *(f"test_noise_removed_{level}" for level in LEVELS),
)
# The 2019 tables leave out entries whose given or guessed class name holds an apostrophe
# (their class-name list has them at these indices) ...
APOSTROPHE_CLASSES = (381, 607, 739)
# ... and drop, from some sets, entries labelled with either of the two classes named "crane".
CRANE_CLASSES = (134, 517)
_FILE_NUMBER = re.compile(r"ILSVRC2012_val_(\d{8})\.\w+$")


@dataclass(frozen=True)
class MturkStudy:
    """The study's entries as parallel arrays."""

    numbers: np.ndarray  # ILSVRC2012 validation file number (1-based), from the url
    given: np.ndarray  # the original label
    guessed: np.ndarray  # the label the study suggested
    votes_given: np.ndarray  # workers (of 5) who said the original label is right
    votes_guessed: np.ndarray  # ... the suggested label is right

    def __len__(self) -> int:
        return len(self.numbers)

    def subset(self, keep: np.ndarray) -> MturkStudy:
        return MturkStudy(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


@dataclass(frozen=True)
class LabelSet:
    """Which images a label set scores, over the validation set (index = file number - 1)."""

    name: str
    acc_images: np.ndarray  # bool: the images behind acc1/acc5 (original labels)
    cacc_images: np.ndarray | None  # bool: the images behind cacc1/cacc5; None: no such figures
    relabel: np.ndarray  # int: the corrected label, -1 where the original label stands

    def corrected(self, numbers: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Corrected labels of images given by file number (1-based) and original label."""
        new = self.relabel[numbers - 1]
        return np.where(new >= 0, new, labels)


def _file_number(url: str) -> int:
    """n of a url ending in ILSVRC2012_val_<n>.JPEG; TypeError for another url."""
    found = _FILE_NUMBER.search(url)
    if found is None:
        raise TypeError(url)
    return int(found[1])


def read_mturk(path: str | Path) -> MturkStudy:
    """imagenet_mturk.json as a study; one clear error for anything unexpected."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--mturk: cannot read {path} ({exc})") from None
    try:
        found = [_file_number(entry["url"]) for entry in entries]
        columns = [[entry["given_original_label"], entry["our_guessed_label"],
                    entry["mturk"]["given"], entry["mturk"]["guessed"]] for entry in entries]
    except (TypeError, KeyError) as exc:
        raise UserError(f"--mturk: {path} is not cleanlab's imagenet_mturk.json (an entry lacks "
                        f"{exc} or a url ending in ILSVRC2012_val_<n>.JPEG)") from None
    numbers = np.array(found, np.int64)
    if len(numbers) == 0 or numbers.min() < 1 or numbers.max() > VALIDATION_IMAGES:
        raise UserError(f"--mturk: {path}: file numbers must lie in 1..{VALIDATION_IMAGES}")
    if len(np.unique(numbers)) != len(numbers):
        raise UserError(f"--mturk: {path} has more than one entry for some images")
    given, guessed, votes_given, votes_guessed = np.array(columns, np.int64).T
    return MturkStudy(numbers, given, guessed, votes_given, votes_guessed)


def label_set(name: str, study: MturkStudy, labels: np.ndarray | None = None,
              as_published: bool = False) -> LabelSet:
    """The named set. `labels` (original label per file number - 1) is needed only by the
    published test_noise_removed_c sets, which drop images by their sorted-order position."""
    names = PUBLISHED_SETS if as_published else CORRECT_SETS
    if name not in names:
        other = CORRECT_SETS if as_published else PUBLISHED_SETS
        hint = (" (a published table: add --as-published)" if name in other and not as_published
                else " (a correct set: drop --as-published)" if name in other else "")
        raise UserError(f"unknown label set {name!r}{hint}; choose from {', '.join(names)}")
    if not as_published:
        kind, level = name.rsplit("-", 1)
        return correct_set(study, kind, int(level))
    return published_set(study, name, labels)


def correct_set(study: MturkStudy, kind: str, level: int) -> LabelSet:
    confirmed = study.votes_guessed >= level  # the guessed label is right
    unsure = (study.votes_given < level) & (study.votes_guessed < level)  # neither is confirmed
    everything = np.ones(VALIDATION_IMAGES, bool)
    images = {
        "corrected": everything,
        "cleaned": _without(study.numbers[unsure]),
        "consensus": _only(study.numbers[confirmed]),
        "removed": _without(study.numbers[confirmed | unsure]),
    }[kind]
    relabel = _relabel(study.subset(confirmed))
    return LabelSet(f"{kind}-{level}", images, None if kind == "removed" else images, relabel)


def published_set(study: MturkStudy, name: str, labels: np.ndarray | None) -> LabelSet:
    """One of the 2019 repository's ten tables, quirks included (see the module doc)."""
    study = published_entries(study)
    level = int(re.findall(r"[345]", name)[0])  # consensus5_464 is a level-5 set
    crane = _labelled_with(study, CRANE_CLASSES)
    unsure = (study.votes_given < level) & (study.votes_guessed < level)  # E_c
    confirmed = study.votes_guessed >= level  # G_c
    if name == "consensus5_464":  # only a *guessed* crane label drops an entry here
        chosen = study.subset(confirmed & ~np.isin(study.guessed, CRANE_CLASSES))
        return LabelSet(name, _only(chosen.numbers), _only(chosen.numbers), _relabel(chosen))
    if name.startswith("consensus"):
        chosen = study.subset(confirmed & ~crane)
        return LabelSet(name, _only(chosen.numbers), _only(chosen.numbers), _relabel(chosen))
    if name.startswith("cleaned_and_corrected"):
        kept = _without(study.numbers[unsure])
        return LabelSet(name, kept, kept, _relabel(study.subset(confirmed)))
    flagged = unsure | (confirmed & ~crane)
    kept = _without(_list_position_quirk(study, flagged, labels, name))
    return LabelSet(name, np.ones(VALIDATION_IMAGES, bool), kept, _relabel(None))


def published_entries(study: MturkStudy) -> MturkStudy:
    """The entries every 2019 table works from: all but APOS (5,401 of 5,440)."""
    return study.subset(~_labelled_with(study, APOSTROPHE_CLASSES))


def _list_position_quirk(study: MturkStudy, flagged: np.ndarray, labels: np.ndarray | None,
                         name: str) -> np.ndarray:
    """File numbers test_noise_removed drops: the images whose position in sorted order
    (class folder, then file name) equals the position, in the study's list sorted the same
    way, of a flagged entry - list positions used as image positions."""
    if labels is None or (labels < 0).any():
        raise UserError(f"{name} drops images by their position in the full validation set; it "
                        "needs predictions for all 50,000 images (no --partial)")
    by_position = np.lexsort((np.arange(VALIDATION_IMAGES), labels))  # position -> number - 1
    position_of = np.empty(VALIDATION_IMAGES, np.int64)
    position_of[by_position] = np.arange(VALIDATION_IMAGES)
    in_list_order = np.argsort(position_of[study.numbers - 1], kind="stable")
    list_positions = np.flatnonzero(flagged[in_list_order])
    return by_position[list_positions] + 1


def _labelled_with(study: MturkStudy, classes: tuple[int, ...]) -> np.ndarray:
    return np.isin(study.given, classes) | np.isin(study.guessed, classes)


def _only(numbers: np.ndarray) -> np.ndarray:
    images = np.zeros(VALIDATION_IMAGES, bool)
    images[numbers - 1] = True
    return images


def _without(numbers: np.ndarray) -> np.ndarray:
    return ~_only(numbers)


def _relabel(entries: MturkStudy | None) -> np.ndarray:
    """The guessed labels of `entries` by file number; None: no label changes."""
    relabel = np.full(VALIDATION_IMAGES, -1, np.int64)
    if entries is not None:
        relabel[entries.numbers - 1] = entries.guessed
    return relabel
