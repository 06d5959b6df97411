"""The ``echokdm`` command line: a thin layer that parses, calls the library and prints.

Each sub-command lives in its own module here and exposes a ``click`` command named ``command``;
modules are imported only when their command runs, so ``echokdm --help`` stays fast.
User mistakes (:class:`echokdm.errors.EchoKDMError` and click's usage errors) print one line on stderr and exit
non-zero; ``--debug`` (before or after the sub-command) shows the traceback instead.
Caches that libraries would write under HOME or TMPDIR (matplotlib's font cache and configuration, torch
inductor's kernels) go to a private temporary folder that is removed when the command ends.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy CPU, spinning threads slow torch
# down up to tenfold (measured: 2.7 s vs 0.27 s to segment 30 frames with 2 threads on a loaded 2-core
# machine). Set here, before any command imports torch; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib
import importlib
import logging
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator

import click

from echokdm import __version__
from echokdm.errors import EchoKDMError

#: the --seed of every command: what numpy and torch generators take
SEED = click.IntRange(0, 2**32 - 1)

#: sub-command name -> (module under echokdm.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "Describe a cine loop: frames, timing, spacing, sector."),
    "phantom": ("phantom", "Generate labelled synthetic A4C loops."),
    "metrics": ("metrics", "Keypoints, phases, volumes, EF and GLS from a segmentation."),
    "evaluate": ("evaluate", "Score predictors against baselines on held-out cases; report with CIs and plots."),
    "train": ("train", "Train a registered model (seg, ...) from a YAML config; torchrun for several processes."),
    "segment": ("segment", "Segment LV cavity, myocardium and LA in a cine loop; NIfTI, overlay GIF, EF report."),
    "predict": ("predict", "Predict ES/ED frames or a sequence from a cine loop with KDM; DICOM, pictures, EF report."),
    "predict-batch": ("predict_batch", "Run predict over a manifest of studies (torchrun shards; resumable)."),
}


def device_option(default: str | None = "auto", torchrun: bool = False):
    """The ``--device`` of the commands that run models; ``default=None`` where a config file's value stands
    unless the option is given (``echokdm train``); ``torchrun`` for the commands that run under it."""
    replaces = " (replaces train.device)" if default is None else ""
    ranks = "; under torchrun each rank takes its local GPU" if torchrun else ""
    return click.option(
        "--device",
        default=default,
        show_default=default is not None,
        help=f"auto (a GPU when there is one), cpu, cuda or cuda:N{replaces}{ranks}; bf16 autocast on CUDA.",
    )


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"echokdm.cli.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="echokdm")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors (also accepted after the sub-command).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """echokdm: predict echocardiography frames from contour keypoints (KDM)."""
    ctx.ensure_object(dict)["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = (["--debug"] if debug else []) + [a for a in argv if a != "--debug"]
    with private_caches():
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "building the font cache"
        return _main(argv, debug)


def _main(argv: list[str], debug: bool) -> int:
    try:
        status = cli.main(args=argv, prog_name="echokdm", standalone_mode=False, obj={"argv": list(argv)})
    except click.exceptions.Abort:
        click.echo("echokdm: aborted", err=True)
        return 130
    except click.ClickException as e:
        sub = getattr(e, "ctx", None)
        where = f"{sub.info_name}: " if sub is not None and sub.parent is not None else ""
        hint = " (see --help)" if isinstance(e, click.UsageError) else ""
        click.echo(f"echokdm: error: {where}{' '.join(e.format_message().split())}{hint}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except EchoKDMError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"echokdm: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("echokdm: interrupted", err=True)
        return 130
    except MemoryError:
        click.echo("echokdm: error: out of memory", err=True)
        return 3
    except Exception as e:  # a bug, not a user mistake: still one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"echokdm: internal error: {type(e).__name__}: {e} (rerun with --debug for details)", err=True)
        return 1
    return status if isinstance(status, int) else 0  # ctx.exit(n) in a command: click returns n


#: caches of libraries that would otherwise land under HOME or TMPDIR
CACHE_VARIABLES = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


@contextlib.contextmanager
def private_caches() -> Iterator[None]:
    """Point the library caches (:data:`CACHE_VARIABLES`) the user has not set to a private temporary folder
    and remove it afterwards: a command leaves nothing outside its --out (no file when no temporary folder can
    be made)."""
    unset = [v for v in CACHE_VARIABLES if v not in os.environ]
    try:
        folder = tempfile.mkdtemp(prefix="echokdm-") if unset else None
    except OSError:
        folder = None
    for v in unset if folder else ():
        os.environ[v] = folder
    try:
        yield
    finally:
        if folder:
            for v in unset:
                os.environ.pop(v, None)
            shutil.rmtree(folder, ignore_errors=True)


def run() -> None:
    """The ``echokdm`` executable: :func:`main`, then leave without the interpreter's teardown.

    Everything a command writes is closed (atomically renamed) when it returns, so after flushing the logs
    and standard streams the process exits at once: tearing down torch, MONAI and diffusers would add about
    a second to every command. Library callers and tests use :func:`main`, which returns. MONAI is initialised
    without the libraries it imports only for unused features (:mod:`echokdm.cli.lean_imports`).
    """
    from echokdm.cli import lean_imports

    lean_imports.install()
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
