"""Case-by-case review of predictions: a loop player, a sequence viewer, the EF table and the review log.

What ``notebooks/clinician_review.ipynb`` is made of. Nothing here needs a notebook: the player is an HTML
string, the strip a matplotlib figure, the log a CSV. ipywidgets is optional: :func:`sequence_viewer` falls
back to a strip of frames without it, and :func:`review_form` is replaced by :meth:`ReviewLog.record`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from echokdm.errors import InputError, OutputError, UnsupportedError
from echokdm.outputs import OutputDir

#: what a reviewer can decide about a case
DECISIONS = ("accept", "flag")
#: columns of the review CSV, in order
REVIEW_COLUMNS = ("time_utc", "case_id", "decision", "comment", "reviewer", "report")


def widgets_available() -> bool:
    """Whether ipywidgets can be imported (sliders and forms; otherwise the plain fallbacks are used)."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def loop_player(rgb: np.ndarray, frame_time_ms: float | None = None, titles: Sequence[str] | None = None) -> str:
    """An HTML animation of a loop with play/pause/step controls (matplotlib ``to_jshtml``, frames embedded).

    Args:
        rgb: (T, H, W, 3) uint8 frames, e.g. :func:`echokdm.render.label_overlay`.
        frame_time_ms: playback frame time (default 40 ms).
        titles: one title per frame (default ``frame t``).

    Returns:
        Self-contained HTML (show it with ``IPython.display.HTML``).

    Raises:
        InputError: not (T, H, W, 3) or a title count other than T.
    """
    from matplotlib.animation import FuncAnimation
    from matplotlib.figure import Figure

    rgb = _check_rgb(rgb)
    titles = _titles(titles, len(rgb))
    h, w = rgb.shape[1:3]
    fig = Figure(figsize=(5.0, 5.0 * h / w + 0.35), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1 - 0.35 / (5.0 * h / w + 0.35)))
    ax.set_axis_off()
    image = ax.imshow(rgb[0], interpolation="nearest")
    title = ax.set_title(titles[0], fontsize=9)

    def show(t: int) -> tuple:
        image.set_data(rgb[t])
        title.set_text(titles[t])
        return image, title

    anim = FuncAnimation(fig, show, frames=len(rgb), interval=float(frame_time_ms or 40.0), blit=False)
    return anim.to_jshtml(default_mode="loop")


def frame_strip(rgb: np.ndarray, titles: Sequence[str], columns: int = 6):
    """The frames side by side in rows of ``columns`` (the viewer without ipywidgets).

    Args:
        rgb: (N, H, W, 3) uint8 frames.
        titles: one title per frame.
        columns: frames per row.

    Returns:
        A ``matplotlib.figure.Figure`` (notebooks show it; ``fig.savefig`` writes it).

    Raises:
        InputError: not (N, H, W, 3) or a title count other than N.
    """
    from matplotlib.figure import Figure

    rgb = _check_rgb(rgb)
    titles = _titles(titles, len(rgb))
    cols = max(1, min(columns, len(rgb)))
    rows = -(-len(rgb) // cols)
    h, w = rgb.shape[1:3]
    fig = Figure(figsize=(2.4 * cols, (2.4 * h / w + 0.3) * rows), dpi=100, layout="tight")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, img, t in zip(axes.ravel(), rgb, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(t, fontsize=8)
    return fig


def sequence_viewer(rgb: np.ndarray, titles: Sequence[str]):
    """A frame slider over a sequence (ipywidgets), or :func:`frame_strip` when ipywidgets is not installed.

    Args:
        rgb: (N, H, W, 3) uint8 frames, e.g. the source and the predicted sequence with their segmentation.
        titles: one title per frame.

    Returns:
        An ``ipywidgets.VBox`` (title, frame, slider) or a matplotlib ``Figure``.

    Raises:
        InputError: not (N, H, W, 3) or a title count other than N.
    """
    rgb = _check_rgb(rgb)
    titles = _titles(titles, len(rgb))
    if not widgets_available():
        return frame_strip(rgb, titles)
    import imageio.v3 as iio
    import ipywidgets as widgets

    pngs = [iio.imwrite("<bytes>", f, extension=".png") for f in rgb]
    image = widgets.Image(value=pngs[0], format="png", width=min(4 * rgb.shape[2], 640))
    label = widgets.Label(titles[0])
    slider = widgets.IntSlider(value=0, min=0, max=len(rgb) - 1, description="frame", continuous_update=True)

    def update(change: dict) -> None:
        image.value = pngs[change["new"]]
        label.value = titles[change["new"]]

    slider.observe(update, names="value")
    return widgets.VBox([label, image, slider])


def ef_table(report: dict[str, Any]) -> pd.DataFrame:
    """The EF of a prediction report (``echokdm predict``'s ``report.json``) as a table.

    Rows: the source beat (contours of its ED and ES frames), the target keypoints, the requested EF (target-EF
    predictions), the prediction (its segmentation against the source's), and the consistency of the
    prediction with the target keypoints (and with the truth, when known).

    Args:
        report: the report dict (:attr:`echokdm.predict.Prediction.report`).

    Returns:
        DataFrame indexed by row name with columns ``EF (%)`` and ``from``.
    """
    ef, phases = report["ef"], report["phases"]
    ed, es = phases["beat"]
    src, tgt = report["source_frame"], report["target_frame"]
    target = f"real frame {tgt}" if tgt is not None else report["request"]["mode"].replace("_", " ")
    rows = [
        ("source beat", ef["source_beat"], f"contours of ED frame {ed} and ES frame {es} (Simpson)"),
        ("source beat, area-length", ef["source_beat_area_length"], "same contours, area-length volumes"),
        ("target keypoints", ef["target_keypoints"], f"keypoints of source frame {src} -> target keypoints ({target})"),
    ]
    if ef["requested"] is not None:
        rows.append(("requested", ef["requested"], "--target-ef"))
    rows.append(("prediction", ef["prediction"], "segmentation of the source and of the predicted frame"
                 if ef["prediction"] is not None else ef["prediction_note"]))
    cons = ef["consistency"] or {}
    rows.append(("|prediction - target keypoints|", cons.get("seg_vs_keypoints"), "EF consistency (EF points)"))
    if cons.get("ef_truth") is not None and report["request"]["mode"] == "target_ef":
        rows.append(("|prediction - requested|", cons.get("seg_vs_truth"), "EF points"))
    table = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=["EF (%)", "from"])
    table["EF (%)"] = table["EF (%)"].astype(float).round(1)
    return table


class ReviewLog:
    """Review decisions in a CSV (:data:`REVIEW_COLUMNS`), one row per decision, earlier rows kept.

    Args:
        folder: output folder of the review (created; an earlier review folder is continued, never cleared).
        name: file name of the CSV inside it.

    Raises:
        OutputError: ``folder`` is a file or a non-empty folder not made by echokdm, or the CSV has other columns.
    """

    def __init__(self, folder: str | os.PathLike, name: str = "review.csv") -> None:
        out = OutputDir(folder, resume=True)
        out.release()  # the folder is locked only while a decision is written: a notebook may open it twice
        self.folder, self.name = out.path, name
        self.path = out.file(name)
        if self.path.exists():
            header = self.path.read_text().splitlines()[:1]
            if header and header[0].split(",") != list(REVIEW_COLUMNS):
                raise OutputError(
                    f"{self.path} is not an echokdm review log "
                    f"(columns {header[0]!r}, expected {','.join(REVIEW_COLUMNS)})"
                )

    def record(
        self,
        case_id: str,
        decision: str,
        comment: str = "",
        reviewer: str = "",
        report: str | os.PathLike | None = None,
    ) -> dict[str, str]:
        """Append one decision (written atomically; the time is UTC).

        Args:
            case_id: the case reviewed (e.g. the study's file name).
            decision: one of :data:`DECISIONS`.
            comment: free text.
            reviewer: who decided.
            report: the prediction report reviewed (path), if any.

        Returns:
            The row written.

        Raises:
            InputError: an empty case id or a decision other than :data:`DECISIONS`.
        """
        if not str(case_id).strip():
            raise InputError("a review needs a case id, got an empty one")
        if decision not in DECISIONS:
            raise InputError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        row = {
            "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "case_id": str(case_id), "decision": decision, "comment": str(comment), "reviewer": str(reviewer),
            "report": "" if report is None else str(report),
        }
        out = OutputDir(self.folder, resume=True)  # locked from reading the earlier rows to writing them back
        try:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
            if self.path.exists():
                buf.write(self.path.read_text())
            else:
                writer.writeheader()
            writer.writerow(row)
            out.write_text(self.name, buf.getvalue())
        finally:
            out.release()
        return row

    def table(self) -> pd.DataFrame:
        """Every decision so far, oldest first."""
        if not self.path.exists():
            return pd.DataFrame(columns=list(REVIEW_COLUMNS))
        return pd.read_csv(self.path, dtype=str, keep_default_na=False)


def review_form(log: ReviewLog, case_id: str, reviewer: str = "", report: str | os.PathLike | None = None):
    """An accept/flag + comment form whose Save button appends the decision to ``log``.

    Args:
        log: where decisions go.
        case_id: the case under review.
        reviewer: recorded with each decision.
        report: the prediction report reviewed (path), recorded with each decision.

    Returns:
        An ``ipywidgets.VBox``.

    Raises:
        UnsupportedError: ipywidgets is not installed (call ``log.record(case_id, "accept" or "flag", comment)``).
    """
    if not widgets_available():
        raise UnsupportedError(
            f"the review form needs ipywidgets; record with log.record({case_id!r}, 'accept' or 'flag', comment)"
        )
    import ipywidgets as widgets

    decision = widgets.ToggleButtons(options=list(DECISIONS), value=None, description="decision")
    comment = widgets.Textarea(placeholder="comment", description="comment", layout=widgets.Layout(width="40em"))
    save = widgets.Button(description="Save", button_style="primary", icon="check")
    status = widgets.Label("")

    def on_save(_: Any) -> None:
        if decision.value is None:
            status.value = "choose accept or flag first"
            return
        row = log.record(case_id, decision.value, comment.value, reviewer, report)
        status.value = f"saved: {row['case_id']} {row['decision']} at {row['time_utc']} -> {log.path}"

    save.on_click(on_save)
    return widgets.VBox([widgets.Label(f"case {case_id}"), decision, comment, widgets.HBox([save, status])])


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 4 or a.shape[-1] != 3 or len(a) == 0:
        raise InputError(f"frames must be (N, H, W, 3) RGB with N >= 1, got shape {tuple(a.shape)}")
    return a.astype(np.uint8, copy=False)


def _titles(titles: Sequence[str] | None, n: int) -> list[str]:
    if titles is None:
        return [f"frame {t}" for t in range(n)]
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise InputError(f"{n} frames need {n} titles, got {len(titles)}")
    return titles


__all__ = [
    "DECISIONS", "REVIEW_COLUMNS", "ReviewLog", "ef_table", "frame_strip", "loop_player", "review_form",
    "sequence_viewer", "widgets_available",
]
