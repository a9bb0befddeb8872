"""The `smtpdiag` command line: a thin click layer over the library.

Each command calls one library function with its options and prints what it returns; what to
keep, what counts as found and how tables are written is the library's.

Exit codes: 0 done; 1 error (one line on stderr); 3 a --fail-on cause was found;
4 partial: a capture was damaged or unreadable, every row that could be read was written.
"""
from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from functools import wraps
from typing import Callable, Iterator, Optional, Sequence

import click

from .errors import ReadLog, SmtpdiagError
from .report.causes import CAUSES
from .runner.options import configured
from .tables.verdicts import ANY, causes_found
from .tables.write import FORMATS, format_for, strip_control, write_table
from .tshark.program import Tshark
from .version import __version__

EXIT_ERROR, EXIT_FAIL_ON, EXIT_PARTIAL = 1, 3, 4


class Ctx:
    def __init__(self, tshark: Optional[str], run_as: Optional[str], debug: bool, quiet: bool):
        self.tshark_path, self.run_as, self.debug, self.quiet = tshark, run_as, debug, quiet
        self._ts: Optional[Tshark] = None
        self.display = None   # the progress display, while captures are read

    @contextmanager
    def progress(self) -> Iterator[object]:
        """The progress display on standard error (None unless it is a terminal and not --quiet)."""
        from .progress import terminal_progress

        self.display = terminal_progress(self.quiet)
        try:
            yield self.display
        finally:
            self.end_progress()

    def end_progress(self) -> None:
        """Clear the display (before the table is printed)."""
        if self.display is not None:
            self.display.close()
            self.display = None

    @property
    def ts(self) -> Tshark:
        if self._ts is None:
            self._ts = Tshark.discover(self.tshark_path, run_as=self.run_as)
        return self._ts


def friendly(fn: Callable) -> Callable:
    """Errors become one line and exit 1; --debug shows the traceback."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except SmtpdiagError as e:
            if ctx.obj and ctx.obj.debug:
                traceback.print_exc()
            click.echo(f"smtpdiag: error: {strip_control(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except (OSError, ValueError) as e:
            if ctx.obj and ctx.obj.debug:
                traceback.print_exc()
            click.echo(f"smtpdiag: error: {strip_control(str(e))}", err=True)
            ctx.exit(EXIT_ERROR)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as e:  # noqa: BLE001 - a bug: one line unless --debug
            if ctx.obj and ctx.obj.debug:
                raise
            click.echo(f"smtpdiag: error: internal error: {type(e).__name__}: {strip_control(str(e))} "
                       "(--debug shows where)", err=True)
            ctx.exit(EXIT_ERROR)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smtpdiag")
@click.option("--tshark", "tshark_path", metavar="PATH", envvar="SMTPDIAG_TSHARK",
              help="tshark to run (default: $SMTPDIAG_TSHARK, PATH, usual install folders).")
@click.option("--run-as", metavar="USER", envvar="SMTPDIAG_RUN_AS",
              help="Run tshark as this user (via setpriv): tshark 4.4+ skips Lua plugins as root.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def cli(ctx: click.Context, tshark_path: Optional[str], run_as: Optional[str], debug: bool, quiet: bool) -> None:
    """Say what is wrong in mail conversations captured with Wireshark/tshark.

    \b
    Example:
      smtpdiag sessions capture.pcapng
      smtpdiag sessions captures/ --filter data_timeout --format csv -o failing.csv
    """
    ctx.obj = Ctx(tshark_path, run_as, debug, quiet)


# -- shared options -------------------------------------------------------------

decode_as_option = click.option("--decode-as", multiple=True, metavar="PORT=PROTO",
                                help="Decode TCP PORT as smtp, pop or imap (repeatable).")


tls_keylog_option = click.option("--tls-keylog", metavar="FILE", type=click.Path(dir_okay=False),
                                 help="TLS key log (SSLKEYLOGFILE format): diagnose SMTP/POP3/IMAP inside TLS.")


def table_options(fn: Callable) -> Callable:
    fn = click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                      help="Output format (default: from the -o file's suffix .csv .json .jsonl .parquet, "
                           "else table).")(fn)
    fn = click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, allow_dash=True),
                      help="Write to FILE (written whole, then renamed) instead of standard output ('-').")(fn)
    fn = decode_as_option(fn)
    fn = click.argument("captures", nargs=-1, required=True, type=click.Path(allow_dash=True))(fn)
    return fn


def _cause_names(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> tuple[str, ...]:
    """Only the contract's cause codes (and 'any'): a typo in a CI gate must not pass silently."""
    bad = [v for v in values if v != ANY and v not in CAUSES]
    if bad:
        raise click.BadParameter(f"unknown cause {', '.join(map(repr, bad))}; valid: {ANY}, {', '.join(CAUSES)}",
                                 ctx=ctx, param=param)
    return tuple(values)


def verdict_options(fn: Callable) -> Callable:
    fn = click.option("--filter", "causes", multiple=True, metavar="CAUSE|any", callback=_cause_names,
                      help="Keep only sessions with this failure cause (repeatable; 'any' = anything but ok).")(fn)
    fn = click.option("--fail-on", multiple=True, metavar="CAUSE|any", callback=_cause_names,
                      help="Exit 3 when a session has this cause ('any' = anything but ok).")(fn)
    return fn


def _size(_ctx, _param, value: Optional[str]) -> Optional[int]:
    from .runner.options import parse_size

    try:
        return parse_size(value) if value else None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def limit_option(fn: Callable) -> Callable:
    """--max-decompressed SIZE: how far a compressed capture may expand (a gzip bomb is refused as damaged)."""
    @wraps(fn)
    def wrapper(*args, max_decompressed=None, **kwargs):
        with configured(max_decompressed=max_decompressed):
            return fn(*args, **kwargs)
    return click.option("--max-decompressed", metavar="SIZE", callback=_size, envvar="SMTPDIAG_MAX_DECOMPRESSED",
                        help="Refuse (as damaged) a gzip capture expanding beyond SIZE, e.g. 500M, 20G "
                             "(default 8G).")(wrapper)


def run_options(fn: Callable) -> Callable:
    """--jobs, --cache-dir/--no-cache, --scheduler: how many captures are read at once, and where."""
    @wraps(fn)
    def wrapper(*args, jobs=None, cache_dir=None, no_cache=False, scheduler=None, **kwargs):
        obj = click.get_current_context().find_object(Ctx)
        with obj.progress() as bar, configured(jobs=jobs, cache_dir=cache_dir, cache=False if no_cache else None,
                                               scheduler=scheduler, progress=bar):
            return fn(*args, **kwargs)
    wrapper = limit_option(wrapper)
    wrapper = click.option("--scheduler", metavar="tcp://HOST:PORT", envvar="SMTPDIAG_SCHEDULER",
                           help="Run the per-file tshark jobs on this Dask cluster (see docs/scale.md).")(wrapper)
    wrapper = click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")(wrapper)
    wrapper = click.option("--cache-dir", type=click.Path(file_okay=False), envvar="SMTPDIAG_CACHE_DIR",
                           help="Result cache (default: $XDG_CACHE_HOME/smtpdiag/results).")(wrapper)
    wrapper = click.option("-j", "--jobs", type=click.IntRange(min=1), envvar="SMTPDIAG_JOBS",
                           help="Captures read at once, one tshark each (default: number of CPUs).")(wrapper)
    return wrapper


# What a terminal shows of a sessions table (every column: --format csv/json/parquet, or --wide).
COMPACT = ["pcap_file", "stream", "proto", "client_ip", "server_ip", "server_port", "failure_cause", "detail"]


def _emit(df, fmt: Optional[str], output: Optional[str], wide: bool = True) -> None:
    """Write the table: to -o FILE (its suffix tells the format unless --format does) or standard output."""
    try:
        fmt = format_for(output, fmt)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'-o'") from None
    to_stdout = output in (None, "-")
    if fmt == "parquet" and to_stdout and sys.stdout.isatty():
        raise click.UsageError("Parquet is binary: use -o FILE, or -o - with standard output redirected")
    ctx = click.get_current_context(silent=True)
    if ctx and ctx.find_object(Ctx):
        ctx.find_object(Ctx).end_progress()
    if fmt == "table" and not wide and set(COMPACT) <= set(df.columns):
        df = df[COMPACT]
    write_table(df, fmt, None if to_stdout else output, stream=sys.stdout if to_stdout else None)


def _finish(ctx: click.Context, read_log: ReadLog, df=None, fail_on: Sequence[str] = ()) -> None:
    ctx.obj.end_progress()
    for path, line in read_log.skipped.items():
        click.echo(f"smtpdiag: warning: {strip_control(line)}", err=True)
    for path, line in read_log.failed.items():
        named = line if path in line else f"{path}: {line}"      # every per-file error names its file
        click.echo(f"smtpdiag: error: {strip_control(named)}", err=True)
    for path, line in read_log.damaged.items():
        click.echo(f"smtpdiag: warning: {strip_control(path)}: damaged capture, rows read before the damage kept: "
                   f"{strip_control(line)}", err=True)
    hit = causes_found(df, fail_on) if fail_on and df is not None else []
    if hit:
        click.echo(f"smtpdiag: found {', '.join(hit)}", err=True)
        ctx.exit(EXIT_FAIL_ON)
    if not read_log.ok:
        ctx.exit(EXIT_PARTIAL)


# -- commands --------------------------------------------------------------------

@cli.command()
@table_options
@verdict_options
@click.pass_context
@friendly
@click.option("--proto", "protos", multiple=True, type=click.Choice(["smtp", "pop", "imap", "dns"]),
              help="Keep only these conversations (repeatable; default: all).")
@click.option("--wide", is_flag=True, help="Table format: every column, not the compact set.")
@tls_keylog_option
@run_options
def sessions(ctx: click.Context, captures, fmt, output, decode_as, causes, fail_on, protos, wide, tls_keylog) -> None:
    """One row per conversation (SMTP, POP3, IMAP session; mail DNS lookup) with its diagnosis.

    \b
    Example:
      smtpdiag sessions mail.pcapng
      smtpdiag sessions /var/captures --fail-on any --format json -o sessions.json
      smtpdiag sessions relay.pcap --proto dns --filter dns_no_response
      smtpdiag sessions starttls.pcap --tls-keylog sslkeys.log
    """
    from .tables.sessions import sessions as build

    log = ReadLog()
    df = build(list(captures), tshark=ctx.obj.ts, read_log=log, decode_as=decode_as, cause=causes or None,
               proto=protos or None, tls_keylog=tls_keylog)
    _emit(df, fmt, output, wide)
    _finish(ctx, log, df, fail_on)


@cli.command()
@table_options
@verdict_options
@click.pass_context
@friendly
@tls_keylog_option
@run_options
def transactions(ctx: click.Context, captures, fmt, output, decode_as, causes, fail_on, tls_keylog) -> None:
    """One row per SMTP mail transaction (Zeek smtp.log columns).

    \b
    Example:
      smtpdiag transactions mail.pcap --format csv -o transactions.csv
    """
    from .tables.transactions import transactions as build

    log = ReadLog()
    df = build(list(captures), tshark=ctx.obj.ts, read_log=log, decode_as=decode_as, cause=causes or None,
               tls_keylog=tls_keylog)
    _emit(df, fmt, output)
    _finish(ctx, log, df, fail_on)


@cli.command()
@table_options
@click.option("-e", "--field", "fields", multiple=True, metavar="FIELD",
              help="tshark field to extract (repeatable; default: a useful SMTP set).")
@click.option("-Y", "--display-filter", default="smtpdiag", show_default=True, help="Which frames.")
@click.option("--show-secrets", "--show-credentials", "show_secrets", is_flag=True,
              help="Do not redact frames that carry passwords or AUTH exchanges (their payload included).")
@click.pass_context
@friendly
@limit_option
def packets(ctx: click.Context, captures, fmt, output, decode_as, fields, display_filter, show_secrets) -> None:
    """Any tshark fields (the plugin's included), one row per frame.

    \b
    Example:
      smtpdiag packets mail.pcap -Y 'smtpdiag.reply_code >= 400' -e frame.number -e smtpdiag.reply_to -e smtpdiag.reply_code
    """
    from .tables.packets import DEFAULT_FIELDS, packets as build

    log = ReadLog()
    with ctx.obj.progress() as bar, configured(progress=bar):
        df = build(list(captures), fields=list(fields) or DEFAULT_FIELDS, display_filter=display_filter,
                   tshark=ctx.obj.ts, read_log=log, decode_as=decode_as, show_secrets=show_secrets)
    _emit(df, fmt, output)
    _finish(ctx, log)


@cli.command()
@table_options
@click.pass_context
@friendly
@run_options
def summary(ctx: click.Context, captures, fmt, output, decode_as) -> None:
    """Counts of sessions by failure cause, reply-code class and server.

    \b
    Example:
      smtpdiag summary captures/*.pcapng
    """
    from .tables.summary import capture_summary as build

    log = ReadLog()
    df = build(list(captures), tshark=ctx.obj.ts, read_log=log, decode_as=decode_as)
    _emit(df, fmt, output)
    _finish(ctx, log)


@cli.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write index.html, sessions/transactions .csv and .parquet into.")
@decode_as_option
@click.pass_context
@friendly
@run_options
def report(ctx: click.Context, captures, out_dir, decode_as) -> None:
    """A self-contained HTML report (figures, causes and what to check, failing sessions) plus the tables.

    \b
    Example:
      smtpdiag report captures/*.pcapng -o report/
    """
    from .report.folder import write_report

    log = ReadLog()
    index = write_report(list(captures), out_dir, tshark=ctx.obj.ts, read_log=log, decode_as=decode_as)
    ctx.obj.end_progress()
    if not ctx.obj.quiet:
        click.echo(f"report written: {index}", err=True)
    _finish(ctx, log)


@cli.command()
@click.argument("kind", type=click.Choice(["causes", "replies", "timeline", "latency"]))
@click.argument("captures", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Image to write: FILE.png, FILE.svg or FILE.pdf.")
@decode_as_option
@click.pass_context
@friendly
@run_options
def plot(ctx: click.Context, kind, captures, output, decode_as) -> None:
    """One figure as PNG, SVG or PDF: causes, replies (each session's worst reply), timeline or latency.

    \b
    Example:
      smtpdiag plot causes captures/ -o causes.png
      smtpdiag plot latency mail.pcap -o latency.svg
      smtpdiag plot replies mail.pcap -o replies.pdf
    """
    from .report.plots import write_plot

    log = ReadLog()
    write_plot(kind, list(captures), output, tshark=ctx.obj.ts, read_log=log, decode_as=decode_as)
    _finish(ctx, log)


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for sessions/transactions Parquet (partitions and whole tables) and report/.")
@click.option("--once", is_flag=True, help="Process the files closed so far and exit.")
@click.option("--final", is_flag=True, help="The capture has stopped: the newest file is complete too (implies --once).")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between looks at DIRECTORY.")
@decode_as_option
@click.pass_context
@friendly
@run_options
def watch(ctx: click.Context, directory, out_dir, once, final, interval, decode_as) -> None:
    """Follow a dumpcap ring buffer: each file is diagnosed once dumpcap closes it.

    \b
    Example:
      dumpcap -i eth0 -f 'tcp port 25' -b files:48 -b duration:300 -w /var/cap/mail.pcapng &
      smtpdiag watch /var/cap -o /var/www/mail
      smtpdiag watch /var/cap -o out/ --once --final
    """
    from .watch import watch as follow

    def show(cycle) -> None:
        for line in cycle.read_log.failed.values():
            click.echo(f"smtpdiag: error: {strip_control(line)}", err=True)
        if cycle.new and not ctx.obj.quiet:
            click.echo(f"smtpdiag: watch: {len(cycle.new)} new file(s), {cycle.sessions} sessions in {out_dir}", err=True)

    try:
        log = follow(directory, out_dir, ctx.obj.ts, decode_as, once=once, final=final, interval=interval,
                     on_cycle=show)
    except KeyboardInterrupt:
        return
    _finish(ctx, log)


@cli.command("export-fields")
@click.option("--plugin", default="smtpdiag.lua", show_default=True, metavar="PATH",
              help="The plugin file as the sensor names it (`smtpdiag lua path --plugin` prints this one's).")
@click.option("--capture", default="CAP", show_default=True, metavar="FILE", help="The capture as the sensor names it.")
@click.option("--anonymise", is_flag=True, help="Pseudonyms for addresses, HELO names and users (smtpdiag.anonymise).")
@click.option("--list", "list_only", is_flag=True, help="Print only the fields an export carries, one per line.")
@friendly
def export_fields(plugin: str, capture: str, anonymise: bool, list_only: bool) -> None:
    """Print the tshark commands a sensor runs to export what the tables read (no Python needed there).

    Every table command reads these exports like captures (docs/exports.md).

    \b
    Example:
      smtpdiag export-fields --capture mail.pcapng --anonymise
      smtpdiag sessions sensor-a/ sensor-b/ --format csv
    """
    from .exports.sensor import export_field_list, sensor_commands
    from .tables.schema import SUMMARY_FIELDS

    if list_only:
        click.echo("\n".join(export_field_list(SUMMARY_FIELDS)))
        return
    for c in sensor_commands(SUMMARY_FIELDS, plugin, capture, anonymise=anonymise):
        click.echo(f"# {c.kind}: {c.what}\n{c.command}")


@cli.command()
@click.pass_context
@friendly
def doctor(ctx: click.Context) -> None:
    """Check the set-up: tshark found, its version, the plugin loads, its fields exist.

    \b
    Example:
      smtpdiag doctor
      smtpdiag --tshark /opt/wireshark/bin/tshark --run-as nobody doctor
    """
    from .doctor import run_checks

    ok = True
    for name, good, text in run_checks(ctx.obj.tshark_path, ctx.obj.run_as):
        ok &= good is not False
        click.echo(f"{'ok  ' if good else 'warn' if good is None else 'FAIL'}  {name}: {strip_control(text)}")
    if not ok:
        ctx.exit(EXIT_ERROR)


@cli.group()
def lua() -> None:
    """The Wireshark side: install the plugin and the smtpdiag profile.

    \b
    Example:
      smtpdiag lua install --profile
      smtpdiag lua path
    """


@lua.command("path")
@click.option("--plugin", "plugin_only", is_flag=True, help="Print only the plugin's path.")
@friendly
def lua_path(plugin_only: bool) -> None:
    """Print where the plugin is, and where Wireshark looks for personal plugins.

    \b
    Example:
      tshark -X lua_script:$(smtpdiag lua path --plugin) -r mail.pcap -Y smtpdiag
    """
    from .plugin.file import lua_plugin_path
    from .plugin.install import personal_plugins_dir

    if plugin_only:
        click.echo(str(lua_plugin_path()))
        return
    click.echo(f"plugin: {lua_plugin_path()}")
    click.echo(f"personal plugins folder: {personal_plugins_dir()}")


@lua.command("install")
@click.option("--profile", is_flag=True, help="Also install the 'smtpdiag' configuration profile.")
@click.option("--symlink", is_flag=True, help="Link instead of copying (follows updates of this checkout).")
@click.option("--dest", type=click.Path(file_okay=False), help="Plugins folder (default: Wireshark's personal one).")
@friendly
def lua_install(profile: bool, symlink: bool, dest: Optional[str]) -> None:
    """Put the plugin (and optionally the profile) where Wireshark loads them.

    \b
    Example:
      smtpdiag lua install --profile
    """
    from pathlib import Path

    from .plugin.install import install_plugin, install_profile

    click.echo(f"plugin installed: {install_plugin(Path(dest) if dest else None, symlink=symlink)}")
    if profile:
        click.echo(f"profile installed: {install_profile()}")


# -- global options, also accepted after the subcommand (`smtpdiag sessions x.pcap -q`) ------------

def _set_global(name: str) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value) -> None:
        obj = ctx.find_object(Ctx)
        if obj is not None and value not in (None, False):
            setattr(obj, name, value)
    return callback


def _global_params() -> list[click.Option]:
    return [
        click.Option(["--tshark", "tshark_path"], metavar="PATH", expose_value=False, callback=_set_global("tshark_path"),
                     help="As before the command: tshark to run."),
        click.Option(["--run-as"], metavar="USER", expose_value=False, callback=_set_global("run_as"),
                     help="As before the command: run tshark as this user."),
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_global("debug"),
                     help="Show tracebacks."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_global("quiet"),
                     help="No progress output."),
    ]


def _accept_globals(group: click.Group) -> None:
    for cmd in group.commands.values():
        taken = {o for p in cmd.params for o in getattr(p, "opts", [])}
        cmd.params += [p for p in _global_params() if not taken & set(p.opts)]
        if isinstance(cmd, click.Group):
            _accept_globals(cmd)


_accept_globals(cli)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The console script: SIGINT/SIGTERM kill the tshark children and exit 130/143, temporary files removed."""
    from .tshark import children

    children.handle_signals()
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="smtpdiag")
    except children.Interrupted as e:
        children.stop_all(e.signum)
        click.echo(f"smtpdiag: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
