"""Colab's datasets 4.0 + pyarrow 18.1 + dill 0.3.8 notices under every training cell are silenced, nothing else."""

from __future__ import annotations

import logging
import warnings

import dill
import pytest

from lessons_lib.lesson import quiet_library_notices

# What each training cell printed on Colab's stack (probe 2, finding 5), verbatim but for the function's address.
DILL_NOTICES = [
    "Cannot locate reference to <class 'MonthDayNano'>.",
    "Cannot pickle <class 'MonthDayNano'>: builtins.MonthDayNano has recursive self-references that trigger a "
    "RecursionError.",
]
HASH_NOTICE = (
    "Parameter 'function'=<function truncate_dataset.<locals>.truncate at 0x7f4f3f94ef20> of the transform "
    "datasets.arrow_dataset.Dataset._map_single couldn't be hashed properly, a random hash was used instead. Make "
    "sure your transforms and parameters are serializable with pickle or dill for the dataset fingerprinting and "
    "caching to work."
)


class Records(logging.Handler):
    """Keeps the messages of the records that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_dill_month_day_nano_warnings_are_silenced_and_other_warnings_still_show():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_notices()
        for message in DILL_NOTICES:
            warnings.warn(message, dill.PicklingWarning, stacklevel=1)
        warnings.warn("Cannot locate reference to <class 'SomethingElse'>.", dill.PicklingWarning, stacklevel=1)
        warnings.warn("Cannot locate reference to <class 'MonthDayNano'>.", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
    shown = [(w.category.__name__, str(w.message)) for w in caught]
    assert shown == [
        ("PicklingWarning", "Cannot locate reference to <class 'SomethingElse'>."),
        ("UserWarning", "Cannot locate reference to <class 'MonthDayNano'>."),  # only dill's are silenced
        ("UserWarning", "an unrelated warning"),
    ]


@pytest.fixture
def datasets_records():
    """What reaches the `datasets` library logger (where datasets' own stderr handler sits)."""
    records, logger = Records(), logging.getLogger("datasets")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def test_datasets_random_hash_note_is_silenced_and_other_datasets_warnings_still_show(datasets_records):
    quiet_library_notices()
    fingerprint = logging.getLogger("datasets.fingerprint")
    fingerprint.warning(HASH_NOTICE)
    fingerprint.warning("Transform f couldn't be hashed properly, a random hash was used instead.")
    fingerprint.warning("another fingerprint warning")
    logging.getLogger("datasets.arrow_dataset").warning("an arrow_dataset warning")
    assert datasets_records.messages == ["another fingerprint warning", "an arrow_dataset warning"]


def test_quieting_twice_adds_each_filter_once():
    with warnings.catch_warnings():
        quiet_library_notices()
        before = len(warnings.filters)
        quiet_library_notices()
        assert len(warnings.filters) == before
    filters = logging.getLogger("datasets.fingerprint").filters
    assert len(filters) == len(set(filters))
