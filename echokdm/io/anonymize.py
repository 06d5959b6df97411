"""De-identify the DICOM files echokdm writes: DICOM PS3.15 Basic Application Level Confidentiality Profile.

The attribute actions of Table E.1-1 (D replace with a dummy, Z empty, X remove, U replace UID, and the
combined Z/D, X/Z, X/D, X/Z/D, X/Z/U*) come from the ``dicom-anonymizer`` package (its table of the
standard's 2026c edition, and its action for each VR); private attributes are removed. echokdm settles what
the package leaves open or gets wrong for a valid file:

- UIDs (U) become keyed hashes of the original: the same original UID always gets the same new UID under one
  :class:`Anonymizer` (files of one run stay consistently linked), and nobody without the key can link them
  back. A UID the Anonymizer issued itself is kept, so a document that references already de-identified
  files (an SR of a de-identified prediction) keeps pointing at them. Source Image / Referenced Image
  Sequences (X/Z/U*) keep their items, whose instance UIDs are replaced the same way: a derived image still
  points at its (de-identified) source.
- Items of the sequences that remain are cleaned with the same rules (Table E.1-1 "K": cleaned for sequences).
  The Content Sequence of a structured report (D) is kept and cleaned the same way (the Clean Structured
  Content option, E.3.3): echokdm's reports hold codes, numbers and references that echokdm generated, and
  their UIDs are replaced as above.
- Dates and times: Z, X/Z and X/Z/D give an empty value, X and X/D remove the attribute, D and Z/D give
  19000101 / 000000 (a dummy is conformant where the IOD needs a value, e.g. a SEG's Content Date; the
  package writes 00010101 everywhere, which validators reject).
- Patient Identity Removed (0012,0062) = YES, De-identification Method (0012,0063) and De-identification
  Method Code Sequence (0012,0064) = (113100, DCM, "Basic Application Confidentiality Profile").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import version

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from echokdm import __version__

#: the edition of PS3.15 Table E.1-1 applied (a table of ``dicom-anonymizer``)
PROFILE_TABLE = "dicomfields_2026c"
#: Content Sequence of a structured report: kept and cleaned (see the module docstring)
CONTENT_SEQUENCE = (0x0040, 0xA730)
#: Code of the basic profile in De-identification Method Code Sequence (DICOM CID 7050)
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
#: dummy values of action D for dates and times
DUMMY_TIMES = {"DA": "19000101", "TM": "000000", "DT": "19000101000000"}
#: table category -> what happens to a date or time in it
_TIME_ACTIONS = {"D_TAGS": "dummy", "Z_TAGS": "empty", "Z_D_TAGS": "dummy", "X_Z_TAGS": "empty",
                 "X_Z_D_TAGS": "empty", "X_TAGS": "remove", "X_D_TAGS": "remove"}

Rule = Callable[[Dataset, tuple[int, int]], None]


class Anonymizer:
    """Apply the basic confidentiality profile to datasets in place.

    Args:
        key: secret of the UID mapping; datasets de-identified with the same key share new UIDs for shared
            original UIDs. Default: 32 random bytes, so the mapping lives as long as this object (one run).

    Example::

        anonymize = Anonymizer()
        ds = anonymize(pydicom.dcmread("study.dcm"))
    """

    def __init__(self, key: bytes | None = None) -> None:
        from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
        from dicomanonymizer.simpledicomanonymizer import initialize_actions, keep

        self.key = key if key is not None else os.urandom(32)
        #: De-identification Method: who applied which table (two values, each at most 64 characters)
        self.method = [f"echokdm {__version__}: PS3.15 E.1-1 basic profile {PROFILE_TABLE[-5:]}",
                       f"dicom-anonymizer {version('dicom-anonymizer')}"]
        table = dicom_anonymization_database_selector(PROFILE_TABLE)
        rules: dict[tuple, Rule] = initialize_actions(PROFILE_TABLE)
        for category, action in _TIME_ACTIONS.items():
            for tag in table[category]:
                if len(tag) == 2 and _vr(tag) in DUMMY_TIMES:
                    rules[tag] = _time_rule(action)
        rules.update({tag: self._replace_uid for tag in table["U_TAGS"] if len(tag) == 2})
        # X/Z/U*: keep the reference sequences; their items are cleaned like any sequence's, which replaces the
        # instance UIDs they hold (U) and keeps the SOP classes
        rules.update({tag: keep for tag in table["X_Z_U_STAR_TAGS"] if len(tag) == 2})
        rules[CONTENT_SEQUENCE] = keep
        self.rules = rules
        self._issued: set[str] = set()

    def uid(self, uid: str) -> str:
        """The new UID of an original one (same key and UID, same result); a UID issued here stays itself."""
        if str(uid) in self._issued:
            return str(uid)
        new = str(generate_uid(entropy_srcs=[self.key.hex(), str(uid)]))
        self._issued.add(new)
        return new

    def __call__(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` (and its ``file_meta``) in place.

        Args:
            ds: the dataset.

        Returns:
            ``ds``, with Patient Identity Removed = YES.
        """
        self._apply(ds)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = self.method
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        return ds

    def _apply(self, ds: Dataset) -> None:
        from dicomanonymizer.simpledicomanonymizer import anonymize_dataset

        anonymize_dataset(ds, delete_private_tags=True, base_rules_gen=lambda: dict(self.rules))
        for element in list(ds):
            if element.VR == "SQ":
                for item in element.value:
                    self._apply(item)

    def _replace_uid(self, ds: Dataset, tag: tuple[int, int]) -> None:
        """Action U: a keyed hash of the UID (each value of a multi-valued one)."""
        element = ds.get(tag)
        if element is None or not element.value:
            return
        if element.VM > 1:
            element.value = [self.uid(v) for v in element.value]
        else:
            element.value = self.uid(element.value)


def _vr(tag: tuple[int, int]) -> str | None:
    try:
        return dictionary_VR((tag[0] << 16) | tag[1])
    except KeyError:
        return None


def _time_rule(action: str) -> Rule:
    """A date/time action: ``dummy`` (D), ``empty`` (Z) or ``remove`` (X)."""

    def rule(ds: Dataset, tag: tuple[int, int]) -> None:
        element = ds.get(tag)
        if element is None:
            return
        if action == "remove":
            del ds[tag]
        else:
            element.value = DUMMY_TIMES[element.VR] if action == "dummy" else ""

    return rule


__all__ = ["Anonymizer", "DUMMY_TIMES", "PROFILE_CODE", "PROFILE_TABLE"]
