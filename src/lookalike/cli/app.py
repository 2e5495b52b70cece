"""The Typer application object. Command modules register on it; they only parse arguments,
call the library and print.

Kept light on purpose: `lookalike --help` and an argument error must answer in a blink, so this
module and every command module import only typer and the standard library at import time;
the library (numpy, ONNX Runtime, FAISS, pydantic...) and rich load inside the commands.
Help is plain text (Typer's rich markup off), so square brackets and defaults show as written.
"""

from __future__ import annotations

import enum
import math
import re
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer._click.exceptions import MissingParameter  # Typer's own (vendored) click
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType

from lookalike import __version__
from lookalike.errors import LookalikeError

#: Exit code of a command that failed on a LookalikeError (bad input, missing catalog...);
#: the same as an argument error.
ERROR_EXIT = 2

# The library refuses an image past Pillow's decompression-bomb threshold itself, naming the
# file (lookalike.images); Pillow's own warning about it would only add a stray stderr line.
# (Matched by its text, so that PIL need not be imported before a command runs.)
warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")


def print_error(message: str) -> None:
    """`error: <message>` on one line of stderr."""
    typer.echo(f"error: {message}", err=True)


_QUICK: dict[type, type] = {}


def _number(param: Any, ctx: Any, value: Any, kind: type[int] | type[float]) -> int | float:
    """`value` (typed on the command line, or a default) as an int or a float within the
    parameter's range, or a BadParameter in plain words."""
    words = "a whole number" if kind is int else "a number"
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise typer.BadParameter(f"must be {words}, got {value!r}", ctx=ctx, param=param) from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"must be a finite number, got {value!r}", ctx=ctx, param=param)
    low, high = param.min, param.max
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (f"between {low:g} and {high:g}" if low is not None and high is not None
                  else f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise typer.BadParameter(f"must be {bounds}, got {value}", ctx=ctx, param=param)
    return number


def _choice(param: Any, ctx: Any, value: Any, kind: type[enum.Enum]) -> enum.Enum:
    """`value` (typed on the command line, or a default) as a member of the enum `kind`, or a
    BadParameter naming the choices."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise typer.BadParameter(f"must be one of {choices}, got {value!r}", ctx=ctx,
                                 param=param) from None


def _quick_class(cls: type) -> type:
    """`cls` (a Typer parameter class) without the cost of Typer's conversion where it is not
    needed: Typer converts every value, even one not given, with a pydantic TypeAdapter
    (importing pydantic: a fifth of a second, before any argument error can be shown). Values
    not given (None) need no conversion; numbers are converted and range-checked here, in
    plain words ("-k: must be between 1 and 1000, got 0"), and choices (an Enum) are checked
    here too. Everything else is Typer's."""

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        kind = self.type_descriptor.annotation
        if value is None:
            if self.required:
                raise MissingParameter(ctx=ctx, param=self)
            value = () if self.multiple or self.nargs == -1 else None
        elif kind in (int, float) and not isinstance(value, bool) and not (
            self.multiple or self.nargs != 1 or getattr(self, "clamp", False)
        ):
            value = _number(self, ctx, value, kind)
        elif isinstance(kind, type) and issubclass(kind, enum.Enum) and not (
            self.multiple or self.nargs != 1
        ):
            value = _choice(self, ctx, value, kind)
        else:
            return cls.process_value(self, ctx, value)  # type: ignore[attr-defined]
        return value if self.callback is None else self.callback(ctx, self, value)

    return type(cls.__name__, (cls,), {"__slots__": (), "process_value": process_value})


def _quick(param: Any) -> Any:
    """`param`, its class swapped for its `_quick_class`."""
    cls = type(param)
    if param is not None and cls not in _QUICK.values():
        if cls not in _QUICK:
            _QUICK[cls] = _quick_class(cls)
        param.__class__ = _QUICK[cls]
    return param


class LookalikeGroup(TyperGroup):
    """The command group: every LookalikeError a command raises leaves as one line
    `error: <message>` on stderr and exit code 2, never a traceback (in one place, not per
    command). Its help lists each command with its whole first sentence."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (Typer's vendored click)
        try:
            return super().invoke(ctx)
        except LookalikeError as exc:
            print_error(str(exc))
            raise typer.Exit(ERROR_EXIT) from None

    def get_help_option(self, ctx: Any) -> Any:
        return _quick(super().get_help_option(ctx))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=200)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


#: Typer's value placeholders (`<path>`, `<list[str]>`...) → the words of help texts.
_PLACEHOLDERS = {
    "path": "PATH", "file": "FILE", "directory": "FOLDER", "int": "N", "int range": "N",
    "float": "NUMBER", "float range": "NUMBER", "str": "TEXT", "list[str]": "TEXT",
    "bool": "",
}


def _placeholder(match: re.Match[str]) -> str:
    inner = match.group(1)
    if "|" in inner:  # a choice: its values
        return inner.removeprefix("list[").removesuffix("]")
    return _PLACEHOLDERS.get(inner, re.sub(r"[^A-Za-z0-9]+", "_", inner).strip("_").upper())


class LookalikeCommand(TyperCommand):
    """A command whose help reads as written for people: arguments named as in the usage line
    (`PHOTO`, not `{photo}` and `<path>`), options without Typer's `<type>` placeholders (an
    option without a metavar gets a word: `PATH`, `N`, `TEXT`), defaults without brackets
    around them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params = [_quick(p) for p in self.params]

    def get_help_option(self, ctx: Any) -> Any:
        return _quick(super().get_help_option(ctx))

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            text = re.sub(r"default: \((.*?)\)(?=[;\]])", r"default: \1", text)
            if param.param_type_name == "argument":
                args.append((re.sub(r" <[^>]*>$", "", name), text))
            else:
                opts.append((re.sub(r"<([^>]*)>", _placeholder, name).rstrip(), text))
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = param.metavar or (param.name or "").upper()
            if param.nargs != 1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class LookalikeTyper(typer.Typer):
    """`typer.Typer` whose commands are `LookalikeCommand`s unless they say otherwise."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or LookalikeCommand, **kwargs)


app = LookalikeTyper(
    name="lookalike",
    cls=LookalikeGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"lookalike {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Recommend fashion items by how they look: a photo in, look-alike catalog items out.

    Start with `lookalike ingest PHOTOS --metadata items.csv` (a catalog folder, ./catalog by
    default), then `lookalike search PHOTO`; `lookalike demo` builds one from the bundled
    sample. `lookalike COMMAND --help` explains each command.
    """
