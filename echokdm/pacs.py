"""DICOMweb in and out with dicomweb-client: find the ultrasound cines of studies (QIDO-RS), retrieve them (WADO-RS)
and store echokdm's results back into their studies (STOW-RS).

Authentication: a token from the environment, never from the command line: ``ECHOKDM_DICOMWEB_TOKEN`` (the
value) or ``ECHOKDM_DICOMWEB_TOKEN_FILE`` (a file holding it). It is sent as ``Authorization: Bearer <token>``;
a value that already names its scheme (``Bearer ...``, ``Basic <base64 of user:password>``) is sent as it is.

Which instances are predicted: those of series with Modality US that hold a loop (Number of Frames > 1 where
the server reports it) and are not predictions that echokdm stored (Manufacturer ``echokdm``, Series Description
``echokdm prediction``: a batch never predicts its own results). Every other instance is listed with the reason
it was skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from echokdm.errors import InputError, RemoteError, StoreError

TOKEN_ENV = "ECHOKDM_DICOMWEB_TOKEN"
TOKEN_FILE_ENV = "ECHOKDM_DICOMWEB_TOKEN_FILE"
#: seconds to wait for the server (connect, read)
TIMEOUT = (10.0, 300.0)
#: QIDO-RS attributes asked for besides the UIDs
SERIES_FIELDS = ("Modality", "Manufacturer", "SeriesDescription")
#: Series Description of the prediction cines echokdm stores (see :func:`echokdm.io.write_cine_dicom`)
PREDICTION_SERIES = "echokdm prediction"
INSTANCE_FIELDS = ("SOPClassUID", "NumberOfFrames")


@dataclass(frozen=True)
class RemoteInstance:
    """One instance found by QIDO-RS and what the batch does with it.

    Attributes:
        study, series, sop: its Study, Series and SOP Instance UIDs.
        modality, manufacturer, description: of its series.
        sop_class: its SOP Class UID ("" when not reported).
        frames: its Number of Frames (None when not reported).
    """

    study: str
    series: str
    sop: str
    modality: str
    manufacturer: str
    description: str
    sop_class: str
    frames: int | None

    @property
    def skip_reason(self) -> str | None:
        """Why the instance is not predicted, or None."""
        if not all(_valid_uid(u) for u in (self.study, self.series, self.sop)):
            return "an invalid UID"
        if self.modality != "US":
            return f"not ultrasound (Modality {self.modality or 'missing'})"
        if self.manufacturer == "echokdm" and self.description == PREDICTION_SERIES:
            return "a prediction stored by echokdm"
        if self.frames is not None and self.frames < 2:
            return "a single frame, not a loop"
        return None

    @property
    def path(self) -> str:
        """Its WADO-RS path below the server's root."""
        return f"studies/{self.study}/series/{self.series}/instances/{self.sop}"

    def folder_name(self, pseudonymous: bool = False) -> str:
        """Its results folder: the SOP Instance UID, or (``pseudonymous``) the first 20 hex digits of its SHA-256,
        the same in every run (a batch resumes) and revealing the UID only to someone who holds it already."""
        return "cine-" + hashlib.sha256(self.sop.encode()).hexdigest()[:20] if pseudonymous else self.sop


class DicomWeb:
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS under one root URL).

    Args:
        url: the DICOMweb root, e.g. ``http://localhost:8042/dicom-web``.
        token: the credential (see the module docstring), or None for none.

    Raises:
        InputError: a URL that is not http(s) or carries credentials.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        import requests
        from dicomweb_client import DICOMwebClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"DICOMweb URL {url!r} is not an http(s) URL such as http://localhost:8042/dicom-web")
        if parts.username or parts.password:
            raise InputError(
                f"DICOMweb URL must not carry credentials; put the token in {TOKEN_ENV} or {TOKEN_FILE_ENV}"
            )
        self.url = url.rstrip("/")
        session = requests.Session()
        if token:
            session.headers["Authorization"] = (
                token if token.split(" ", 1)[0] in ("Bearer", "Basic") else f"Bearer {token}"
            )
        self.client = DICOMwebClient(self.url, session=session, timeout=TIMEOUT)

    @classmethod
    def from_environment(cls, url: str, environ: dict[str, str] | None = None) -> DicomWeb:
        """The server at ``url`` with the token of ``ECHOKDM_DICOMWEB_TOKEN`` or ``ECHOKDM_DICOMWEB_TOKEN_FILE``.

        Raises:
            InputError: both variables set, or an unreadable or empty token file.
        """
        env = os.environ if environ is None else environ
        token, path = env.get(TOKEN_ENV), env.get(TOKEN_FILE_ENV)
        if token and path:
            raise InputError(f"set {TOKEN_ENV} or {TOKEN_FILE_ENV}, not both")
        if path:
            try:
                token = Path(path).read_text().strip()
            except OSError as e:
                raise InputError(f"token file {path} ({TOKEN_FILE_ENV}) cannot be read: {e.strerror or e}") from None
            if not token:
                raise InputError(f"token file {path} ({TOKEN_FILE_ENV}) is empty")
        return cls(url, token.strip() if token else None)

    def find_instances(self, studies: Sequence[str] = ()) -> list[RemoteInstance]:
        """Every instance of ``studies`` (all studies of the server when none is given), sorted by UIDs (studies
        and series the server lists with an invalid UID cannot be searched and are left out).

        Raises:
            RemoteError: the server cannot be reached or refuses the query.
            InputError: a given study is not on the server.
        """
        if not studies:
            found = self._call("search for studies", self.client.search_for_studies, get_remaining=True)
            studies = sorted({u for s in found if _valid_uid(u := str(_value(s, "StudyInstanceUID")))})
        elif bad := [s for s in studies if not _valid_uid(s)]:
            raise InputError(f"study {bad[0]!r} is not a valid Study Instance UID")
        out = []
        for study in studies:
            series = self._call(f"search study {study}", self.client.search_for_series, study_instance_uid=study,
                                fields=SERIES_FIELDS, get_remaining=True)
            if not series:
                raise InputError(f"study {study} is not on the DICOMweb server {self.url}")
            for s in series:
                uid = str(_value(s, "SeriesInstanceUID"))
                if not _valid_uid(uid):  # nothing can be asked about it
                    continue
                instances = self._call(f"search series {uid}", self.client.search_for_instances,
                                       study_instance_uid=study, series_instance_uid=uid, fields=INSTANCE_FIELDS,
                                       get_remaining=True)
                for i in instances:
                    out.append(RemoteInstance(study, uid, str(_value(i, "SOPInstanceUID")), str(_value(s, "Modality")),
                                              str(_value(s, "Manufacturer")), str(_value(s, "SeriesDescription")),
                                              str(_value(i, "SOPClassUID")), _frames(_value(i, "NumberOfFrames"))))
        return sorted(out, key=lambda r: (r.study, r.series, r.sop))

    def retrieve(self, instance: RemoteInstance, path: str | os.PathLike) -> None:
        """Write ``instance`` as retrieved (its own transfer syntax) to ``path``.

        Raises:
            RemoteError: the server cannot be reached or refuses the retrieval.
            InputError: what it sent is not a DICOM file that can be written.
        """
        ds = self._call(f"retrieve {instance.path}", self.client.retrieve_instance, instance.study, instance.series,
                        instance.sop)
        try:
            ds.save_as(path, enforce_file_format=True)
        except (ValueError, AttributeError, TypeError) as e:
            raise InputError(
                f"{instance.path}: the retrieved instance is not a valid DICOM file: {' '.join(str(e).split())}"
            ) from None

    def store(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        """Store DICOM files (STOW-RS) into the studies they name.

        Returns:
            The SOP Instance UIDs stored.

        Raises:
            StoreError: the server refused the request or some of the instances.
            RemoteError: the server cannot be reached.
        """
        import pydicom

        datasets = [pydicom.dcmread(p) for p in paths]
        response = self._call("store", self.client.store_instances, datasets, refused=StoreError)
        failed = list(response.get("FailedSOPSequence", [])) if response is not None else []
        if failed:
            reasons = ", ".join(
                f"{f.get('ReferencedSOPInstanceUID', '?')} (failure reason {f.get('FailureReason', '?')})"
                for f in failed
            )
            raise StoreError(
                f"DICOMweb server {self.url} refused to store {len(failed)} of {len(datasets)} instance(s): {reasons}"
            )
        return [str(d.SOPInstanceUID) for d in datasets]

    def _call(self, what: str, fn, *args, refused: type[RemoteError] = RemoteError, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` with the errors of the HTTP layer as one-line :class:`RemoteError`\\ s."""
        import requests

        try:
            return fn(*args, **kwargs)
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else "?"
            reason = e.response.reason if e.response is not None else str(e)
            hint = {
                401: f" (check the token in {TOKEN_ENV} or {TOKEN_FILE_ENV})",
                403: f" (the server does not let this token {what}: check its permissions and the token in {TOKEN_ENV}"
                f" or {TOKEN_FILE_ENV})",
            }.get(status, "")
            raise refused(f"DICOMweb server {self.url} refused to {what}: HTTP {status} {reason}{hint}") from None
        except requests.RequestException as e:
            raise RemoteError(f"DICOMweb server {self.url} cannot be reached ({what}): {type(e).__name__}") from None


#: hidden folder of the batch folder where retrieved cines wait while they are predicted
RETRIEVED = ".dicomweb"
#: results stored back (those present), and the note that they were
RESULT_FILES = ("prediction.dcm", "measurements_sr.dcm", "segmentation_seg.dcm")
STORED = "stored.json"


class DicomWebBatch:
    """The DICOMweb side of ``echokdm predict-batch --dicomweb``: the instances to predict, each retrieved into
    the batch folder only while it is predicted, and the results stored back.

    Args:
        server: the DICOMweb server.
        out: the batch folder.
        pseudonymous: name results folders by a hash of the SOP Instance UID (``--anonymize``).
    """

    def __init__(self, server: DicomWeb, out: str | os.PathLike, pseudonymous: bool = False) -> None:
        self.server = server
        self.out = Path(out)
        self.pseudonymous = pseudonymous

    def instances(self, studies: Sequence[str] = ()) -> dict[str, RemoteInstance]:
        """Results folder name -> instance, for every instance of ``studies`` (see :meth:`DicomWeb.find_instances`)."""
        return {i.folder_name(self.pseudonymous): i for i in self.server.find_instances(studies)}

    def listing(self, instances: dict[str, RemoteInstance]) -> tuple[list[str], list[dict[str, Any]]]:
        """Columns and rows of ``instances.csv``: what was found and what the batch does with it (no UIDs when
        pseudonymous)."""
        uids = [] if self.pseudonymous else ["study_instance_uid", "series_instance_uid", "sop_instance_uid"]
        rows = []
        for name, i in instances.items():
            row = {"id": name, "modality": i.modality, "sop_class": i.sop_class, "frames": i.frames or "",
                   "action": f"skip: {i.skip_reason}" if i.skip_reason else "predict"}
            if uids:
                row.update(study_instance_uid=i.study, series_instance_uid=i.series, sop_instance_uid=i.sop)
            rows.append(row)
        return ["id", *uids, "modality", "sop_class", "frames", "action"], rows

    @contextlib.contextmanager
    def local(self, name: str, instance: RemoteInstance) -> Iterator[Path]:
        """The instance retrieved into the batch folder for the duration of the block (then removed)."""
        path = self.out / RETRIEVED / f"{name}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.server.retrieve(instance, path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def store(self, folder: str | os.PathLike) -> list[str]:
        """Store the DICOM results of a finished study folder into its study and note it in ``stored.json``.

        Raises:
            StoreError: the server refused them (the folder is left as it was).
            RemoteError: the server cannot be reached.
        """
        from echokdm.outputs import OutputDir

        folder = Path(folder)
        files = [folder / f for f in RESULT_FILES if (folder / f).is_file()]
        stored = self.server.store(files)
        note = {"url": self.server.url, "files": [f.name for f in files], "sop_instance_uids": stored}
        OutputDir(folder, resume=True).write_json(STORED, note)
        return stored

    @staticmethod
    def stored(folder: str | os.PathLike) -> bool:
        """Whether the results of a study folder were stored."""
        return (Path(folder) / STORED).is_file()


def _valid_uid(uid: str) -> bool:
    from pydicom.uid import RE_VALID_UID

    return len(uid) <= 64 and RE_VALID_UID.match(uid) is not None


def _frames(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _value(item: dict[str, Any], keyword: str) -> Any:
    """The first value of ``keyword`` in a DICOM JSON item ("" when absent)."""
    from pydicom.datadict import tag_for_keyword

    element = item.get(f"{tag_for_keyword(keyword):08X}", {})
    values = element.get("Value") or [""]
    return values[0]


__all__ = ["DicomWeb", "DicomWebBatch", "RemoteInstance", "TOKEN_ENV", "TOKEN_FILE_ENV"]
