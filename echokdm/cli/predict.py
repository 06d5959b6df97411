"""``echokdm predict --dicom study.dcm [--phase es|ed | --target-ef X | --keypoints F] --out DIR``: KDM prediction
+ report.

``--sample`` predicts on the bundled SonoSite cine instead of ``--dicom``.
"""

from __future__ import annotations

import shlex
import sys

import click

from echokdm.cli import SEED, device_option
from echokdm.defaults import DEFAULT_STEPS, EF_GAP_WARNING, K2F_STEPS


@click.command("predict")
@click.option(
    "--dicom",
    "cine",
    type=click.Path(readable=False),
    default=None,
    help="Cine loop (DICOM, or NIfTI/AVI/MP4/GIF/frames).",
)
@click.option("--sample", is_flag=True, help="Use the bundled sample loop (a real SonoSite cine) instead of --dicom.")
@click.option("--phase", type=click.Choice(["es", "ed"]), default=None,
              help="Target observed in the loop: es (source ED -> ES, the default) or ed (source ES -> ED).")
@click.option(
    "--target-ef", type=float, default=None, help="Predict ES at this EF (%, 5-90), keypoints from the motion prior."
)
@click.option(
    "--keypoints",
    type=click.Path(readable=False),
    default=None,
    help="Target keypoints file (echokdm metrics format, 40 keypoints, or 20 endocardial ones).",
)
@click.option(
    "--frames", type=int, default=1, show_default=True, help="Frames of the sequence source -> target (one K2F run)."
)
@click.option(
    "--seg",
    type=click.Path(readable=False),
    default=None,
    help="Segmentation of every frame (NIfTI/MHD/PNG/DICOM SEG) instead of the built-in one.",
)
@click.option(
    "--source-frame",
    type=int,
    default=None,
    help="Source frame index (default: ED of the first beat; ES for --phase ed).",
)
@click.option("--steps", type=int, default=DEFAULT_STEPS, show_default=True, help="Denoising steps of F2I.")
@click.option("--k2f-steps", type=int, default=K2F_STEPS, show_default=True, help="Denoising steps of K2F.")
@click.option("--ef-check/--no-ef-check", default=True, show_default=True,
              help="Make a prediction whose measured EF misses its keypoints' by more than 5 points again with K2F "
              "held to the keypoints, and keep the closer one (docs/predict.md, 'The EF check').")
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed of the sampling noise (same seed, same pixels)."
)
@click.option("--adapt", type=float, default=None,
              help="Seconds of per-study adaptation (F2I tuned on the loop's own frame pairs; a scored target and its "
              "neighbours left out); steps = seconds x a fixed rate, seconds also cap the time.")
@click.option("--adapt-steps", type=int, default=None,
              help="Adaptation steps, exactly (reproducible on any machine); --adapt then only caps the time.")
@device_option()
@click.option(
    "--weights",
    "weights_dir",
    type=click.Path(),
    default=None,
    help="Folder of weights named like the shipped ones "
    "(seg_a4c, kdm_flow_vae, kdm_k2f, kdm_f2i, kdm_prior .safetensors), "
    "or one trained model (an `echokdm train --out DIR` folder or its model.safetensors; "
    "shipped weights for the rest).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing echokdm output folder.")
@click.option("--anonymize", is_flag=True,
              help="De-identify prediction.dcm (DICOM PS3.15 basic profile) and keep input paths out of the report.")
def command(
    cine,
    sample,
    phase,
    target_ef,
    keypoints,
    frames,
    seg,
    source_frame,
    steps,
    k2f_steps,
    ef_check,
    seed,
    adapt,
    adapt_steps,
    device,
    weights_dir,
    out,
    overwrite,
    anonymize,
) -> None:
    """Predict the target frame (or the sequence towards it) of a cine loop with KDM.

    Writes prediction.dcm, frames/*.png, sequence.gif, comparison.png, flow.png/.npy/.nii.gz,
    segmentation.nii.gz, keypoints.json and report.json/.csv to --out.
    """
    from echokdm.data import sample_path
    from echokdm.errors import InputError
    from echokdm.predict import PredictOptions, PredictWeights, predict_study

    if sample == (cine is not None):
        raise InputError("give either --dicom FILE or --sample")
    cine = sample_path("sonosite") if sample else cine
    options = PredictOptions(phase=phase, target_ef=target_ef, keypoints=keypoints, frames=frames, seg=seg,
                             source_frame=source_frame, steps=steps, k2f_steps=k2f_steps, ef_check=ef_check, seed=seed,
                             adapt=adapt,
                             adapt_steps=adapt_steps)
    weights = PredictWeights.from_dir(weights_dir) if weights_dir else None
    p = predict_study(cine, out, options, weights=weights, device=device, overwrite=overwrite, command=command_line(),
                      anonymize=anonymize)
    ef = p.report["ef"]
    click.echo(f"predicted {len(p.frames)} frame(s) from frame {p.source_frame} -> {out}")
    ed, es = p.report["phases"]["beat"]
    if es < ed:
        click.echo(f"note: the loop shows no ES after its ED (frame {ed}); ED and ES come from neighbouring beats "
                   f"(ES frame {es})")
    line = f"EF source beat {ef['source_beat']:.1f}%, target keypoints {ef['target_keypoints']:.1f}%"
    if ef["requested"] is not None:
        line += f" (solved for the requested {ef['requested']:g}%)"
    line += f", prediction {ef['prediction']:.1f}%" if ef["prediction"] is not None else f" ({ef['prediction_note']})"
    click.echo(line)
    cal = ef["calibration"]
    if cal is not None and cal["bounded"]:
        click.echo(f"warning: EF {cal['requested']:g}% needs target keypoints beyond the plausible {cal['low']:g}-"
                   f"{cal['high']:g}%; the closest prediction measures {ef['prediction']:.1f}%")
    gap = (ef["consistency"] or {}).get("seg_vs_keypoints")
    if ef["requested"] is None and gap is not None and gap > EF_GAP_WARNING:
        click.echo(f"warning: the prediction measures EF {ef['prediction']:.1f}% for target keypoints of "
                   f"{ef['target_keypoints']:.1f}% ({gap:.1f} points apart): its LV does not follow the keypoints "
                   "closely (see comparison.png; on real loops K2F's flow can take back part of the keypoint motion, "
                   "model card: 'The cavity check')")
    if ef["implausible"]:
        click.echo(f"warning: implausible EF (outside 0-100 %: ESV > EDV or worse) of {', '.join(ef['implausible'])}; "
                   "check the loop, the keypoints and the weights")
    im = p.report["image_metrics"]
    if im:
        click.echo(
            f"vs real frame {p.target_frame}: PSNR {im['psnr']:.2f} dB, SSIM {im['ssim']:.3f}, Dice "
            + (f"{im['dice']:.3f}" if im["dice"] is not None else "n/a")
            + f" (copying the source: PSNR {im['copy_source']['psnr']:.2f} dB, SSIM {im['copy_source']['ssim']:.3f})"
        )
    check = p.report["ef_check"]
    wanted = "the requested EF" if ef["requested"] is not None else "the keypoints'"
    if check and check["unchanged"]:
        click.echo(f"note: the prediction's EF is {check['first']:.1f} points from {wanted}, but K2F's flow already "
                   "carries the LV cavity as well as the keypoint spline: holding it to the keypoints would change "
                   "nothing (docs/predict.md: 'The EF check')")
    elif check and check["first"] is not None and check["first"] > check["limit"]:
        second = "not measurable" if check["second"] is None else f"{check['second']:.1f} points"
        click.echo(f"note: the first prediction's EF was {check['first']:.1f} points from {wanted}, so it was "
                   f"made again with K2F held to the keypoints ({second}); the {check['kept']} is kept "
                   "(docs/predict.md: 'The EF check')")
    trust = p.report["cavity_check"]["trust"]
    if trust < 1:
        click.echo(f"note: K2F's flow carried the LV cavity less well than the keypoints ask, so its correction and "
                   f"F2I's residual were weighted {trust:g} inside the heart (model card: 'The cavity check')")
    ad = p.report["adapt"]
    if ad:
        click.echo(f"adapted to the loop: {ad['steps_done']} of {ad['steps']} steps on {len(ad['frames_used'])} "
                   f"frames in {ad['wall_s']:.1f} s, frames {ad['excluded_frames'] or 'none'} left out"
                   + (" (stopped by the time cap: not reproducible; --adapt-steps N is)" if ad["capped"] else ""))
    click.echo(f"time {p.timings['total']:.2f} s")


def command_line() -> str:
    """The command line as the user typed it (``echokdm`` and its arguments), for reports."""
    obj = click.get_current_context().find_root().obj or {}
    return shlex.join(["echokdm", *obj.get("argv", sys.argv[1:])])
