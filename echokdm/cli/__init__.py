"""The ``echokdm`` command line: a thin layer that parses, calls the library and prints.

Each sub-command lives in its own module here and exposes a ``click`` command named ``command``;
modules are imported only when their command runs, so ``echokdm --help`` stays fast.
User mistakes (:class:`echokdm.errors.EchoKDMError`) print one line on stderr and exit non-zero;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback

import click

from echokdm import __version__
from echokdm.errors import EchoKDMError

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
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """echokdm: predict echocardiography frames from contour keypoints (KDM)."""
    ctx.ensure_object(dict)["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        status = cli.main(args=argv, prog_name="echokdm", standalone_mode=False, obj={"argv": list(argv)})
    except click.exceptions.Abort:
        click.echo("echokdm: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
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


def run() -> None:
    """The ``echokdm`` executable: :func:`main`, then leave without the interpreter's teardown.

    Everything a command writes is closed (atomically renamed) when it returns, so after flushing the logs
    and standard streams the process exits at once: tearing down torch, MONAI and diffusers would add about
    a second to every command. Library callers and tests use :func:`main`, which returns.
    """
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
